//! gRPC at the HTTP/2 level, for the ingest twins' `IngestService`
//! (`proto/parallax/ingest/v1/ingest_service.proto`): a client that sends
//! exactly the frames a case names (so broken framing can be sent too) and
//! keeps everything a gRPC client acts on, and the cases themselves.
//!
//! Also the two gRPC clients nobody here wrote: `grpcurl` (a Go module) and
//! Python's `grpcio` (`scripts/grpc-send.py`), both installed by
//! `scripts/deps.sh`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::contract::MAX_BODY_BYTES;

/// The path of `IngestService/Publish`.
pub const PUBLISH: &str = "/parallax.ingest.v1.IngestService/Publish";
/// The trailer carrying the contract's error code.
pub const ERROR_CODE: &str = "parallax-error-code";
/// gRPC's `Retry-After`.
pub const RETRY_PUSHBACK: &str = "grpc-retry-pushback-ms";
/// How long one call may take.
const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// gRPC status codes the contract uses.
pub mod code {
    pub const OK: u32 = 0;
    pub const INVALID_ARGUMENT: u32 = 3;
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    pub const UNIMPLEMENTED: u32 = 12;
    pub const INTERNAL: u32 = 13;
    pub const UNAVAILABLE: u32 = 14;
}

/// One call: request headers and the raw bytes of its DATA frames.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub content_type: Option<String>,
    pub headers: Vec<(String, String)>,
    /// Sent as is: length-prefixed messages, or anything else.
    pub body: Vec<u8>,
}

impl Call {
    /// `Publish` with one uncompressed message.
    pub fn publish(message: &[u8]) -> Call {
        Call::raw(frame(0, message))
    }

    /// `Publish` with `body` as the DATA bytes.
    pub fn raw(body: Vec<u8>) -> Call {
        Call {
            method: Method::POST,
            path: PUBLISH.to_owned(),
            content_type: Some("application/grpc".to_owned()),
            headers: Vec::new(),
            body,
        }
    }

    pub fn path(mut self, path: &str) -> Call {
        self.path = path.to_owned();
        self
    }

    pub fn method(mut self, method: Method) -> Call {
        self.method = method;
        self
    }

    pub fn content_type(mut self, value: Option<&str>) -> Call {
        self.content_type = value.map(str::to_owned);
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Call {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// One gRPC message on the wire: flag, big-endian length, bytes.
pub fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(flag);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// What the twins must agree on, as on the wire: the HTTP status, the
/// content type, `grpc-status` and `grpc-message` (percent-encoded, from the
/// trailers or a trailers-only answer), the contract's trailers, and the
/// response body's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub http_status: u16,
    pub content_type: Option<String>,
    pub grpc_status: Option<String>,
    pub grpc_message: Option<String>,
    pub error_code: Option<String>,
    pub retry_pushback_ms: Option<String>,
    pub body: Vec<u8>,
}

impl Answer {
    /// `grpc-status` as a number.
    pub fn code(&self) -> Option<u32> {
        self.grpc_status.as_deref()?.parse().ok()
    }

    /// `grpc-message`, percent-decoded (empty when absent).
    pub fn message(&self) -> String {
        percent_decode(self.grpc_message.as_deref().unwrap_or(""))
    }

    /// The one response message, when the body is exactly one uncompressed
    /// length-prefixed message.
    pub fn response_message(&self) -> Option<&[u8]> {
        let (head, rest) = self.body.split_at_checked(5)?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        (head[0] == 0 && rest.len() == len).then_some(rest)
    }
}

/// Sends `call` to `addr` on a fresh HTTP/2 (prior knowledge) connection.
///
/// # Panics
/// When the connection fails or no response headers arrive.
pub fn call(addr: SocketAddr, call: &Call) -> Answer {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime
        .block_on(async { tokio::time::timeout(CALL_DEADLINE, send(addr, call)).await })
        .unwrap_or_else(|_| {
            panic!(
                "gRPC call {} to {addr} took over {CALL_DEADLINE:?}",
                call.path
            )
        })
        .unwrap_or_else(|e| panic!("gRPC call {} to {addr}: {e}", call.path))
}

async fn send(addr: SocketAddr, call: &Call) -> Result<Answer, h2::Error> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let (client, connection) = h2::client::handshake(tcp).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await?;
    let mut request = http::Request::builder()
        .method(call.method.clone())
        .uri(format!("http://{addr}{}", call.path))
        .header("te", "trailers");
    if let Some(content_type) = &call.content_type {
        request = request.header("content-type", content_type);
    }
    for (name, value) in &call.headers {
        request = request.header(name, value);
    }
    let request = request.body(()).expect("valid request");
    let end = call.body.is_empty();
    let (response, mut stream) = client.send_request(request, end)?;
    if !end {
        let body = Bytes::from(call.body.clone());
        // A service may answer (and reset the stream) before it read the
        // whole body; sending goes on beside reading the answer.
        tokio::spawn(async move {
            let _ = stream.send_data(body, true);
            // Keep the stream open until the data went out or was reset.
            let _ = std::future::poll_fn(|cx| stream.poll_reset(cx)).await;
        });
    }
    let response = response.await?;
    let (parts, mut body) = response.into_parts();
    let mut data = Vec::new();
    let mut trailers = None;
    loop {
        match body.data().await {
            Some(Ok(chunk)) => {
                let _ = body.flow_control().release_capacity(chunk.len());
                data.extend_from_slice(&chunk);
            }
            // A reset after the answer (the service did not read the rest
            // of the request) ends the body.
            Some(Err(_)) => break,
            None => {
                trailers = body.trailers().await.ok().flatten();
                break;
            }
        }
    }
    // Trailers-only answers carry the status in the headers.
    let status_headers: &HeaderMap = match &trailers {
        Some(t) if t.contains_key("grpc-status") => t,
        _ => &parts.headers,
    };
    let get = |map: &HeaderMap, name: &str| {
        map.get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    Ok(Answer {
        http_status: parts.status.as_u16(),
        content_type: get(&parts.headers, "content-type"),
        grpc_status: get(status_headers, "grpc-status"),
        grpc_message: get(status_headers, "grpc-message"),
        error_code: get(status_headers, ERROR_CODE),
        retry_pushback_ms: get(status_headers, RETRY_PUSHBACK),
        body: data,
    })
}

/// gRPC's percent-decoding of `grpc-message`.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Calls that are wrong as gRPC rather than as a batch, each answered by
/// grpc-go's rules before (or instead of) the handler: content type,
/// method, path, compression, framing, the receive limit.
pub fn framing_cases() -> Vec<(&'static str, Call)> {
    let one = frame(0, b"");
    let two = [frame(0, b""), frame(0, b"")].concat();
    vec![
        ("no_message", Call::raw(Vec::new())),
        ("two_messages", Call::raw(two)),
        ("truncated_prefix", Call::raw(vec![0, 0, 0])),
        ("truncated_message", Call::raw(vec![0, 0, 0, 0, 9, 0x0a])),
        (
            "a_second_message_truncated",
            Call::raw([one.clone(), vec![0, 0, 0, 0, 9]].concat()),
        ),
        ("compressed_flag_without_encoding", Call::raw(frame(1, b""))),
        ("unknown_payload_format", Call::raw(frame(2, b""))),
        (
            "gzip_encoding_is_not_installed",
            Call::raw(frame(1, b"")).header("grpc-encoding", "gzip"),
        ),
        (
            "identity_encoding_is_plain",
            Call::raw(one.clone()).header("grpc-encoding", "identity"),
        ),
        (
            "message_over_8_mib",
            Call::publish(&vec![0x0a; MAX_BODY_BYTES + 1]),
        ),
        (
            "prefix_declaring_4_gib",
            Call::raw(vec![0, 0xff, 0xff, 0xff, 0xff]),
        ),
        (
            "unknown_method",
            Call::raw(one.clone()).path("/parallax.ingest.v1.IngestService/Nope"),
        ),
        (
            "unknown_service",
            Call::raw(one.clone()).path("/parallax.ingest.v2.IngestService/Publish"),
        ),
        (
            "malformed_method_name",
            Call::raw(one.clone()).path("/no-slash"),
        ),
        ("root_path", Call::raw(one.clone()).path("/")),
        ("no_content_type", Call::raw(one.clone()).content_type(None)),
        (
            "json_content_type",
            Call::raw(one.clone()).content_type(Some("application/json")),
        ),
        (
            "grpc_proto_content_type",
            Call::raw(one.clone()).content_type(Some("application/grpc+proto")),
        ),
        (
            "grpc_lookalike_content_type",
            Call::raw(one.clone()).content_type(Some("application/grpcx")),
        ),
        ("put_method", Call::raw(one).method(Method::PUT)),
    ]
}

/// `grpcurl`: `$PARALLAX_GRPCURL`, else on `PATH`, else where `go install`
/// puts it (`$(go env GOBIN)`, else `$(go env GOPATH)/bin`).
///
/// # Panics
/// When none is found: `scripts/deps.sh` installs it.
pub fn grpcurl() -> PathBuf {
    if let Some(path) = std::env::var_os("PARALLAX_GRPCURL").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    if Command::new("grpcurl").arg("-version").output().is_ok() {
        return PathBuf::from("grpcurl");
    }
    let go_env = |name: &str| {
        Command::new("go")
            .args(["env", name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let gobin = match go_env("GOBIN") {
        dir if dir.is_empty() => PathBuf::from(go_env("GOPATH")).join("bin"),
        dir => PathBuf::from(dir),
    };
    let path = gobin.join("grpcurl");
    assert!(
        path.is_file(),
        "grpcurl not found (PARALLAX_GRPCURL, PATH, {}): run scripts/deps.sh",
        gobin.display()
    );
    path
}

/// The repository's root (where `proto/` and `scripts/` are).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("conformance/ has a parent")
        .to_path_buf()
}

/// Runs grpcurl (plaintext, the service described by the checked-in
/// `.proto`, JSON in on stdin) against `addr`; returns its exit code and
/// its stdout and stderr together.
pub fn run_grpcurl(addr: SocketAddr, method: &str, json: &str) -> (i32, String) {
    let root = repo_root();
    let mut child = Command::new(grpcurl())
        .args(["-plaintext", "-format-error", "-import-path"])
        .arg(root.join("proto"))
        .args([
            "-proto",
            "parallax/ingest/v1/ingest_service.proto",
            "-d",
            "@",
        ])
        .arg(addr.to_string())
        .arg(method)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start grpcurl");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(json.as_bytes())
            .expect("write grpcurl's stdin");
    }
    let out = child.wait_with_output().expect("grpcurl runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// Sends each `(name, message)` as a `Publish` call with Python's grpcio
/// (`scripts/grpc-send.py`, no generated code: the message's bytes as
/// they are) and returns one line per call: name, status code name,
/// details, the contract's trailers and the response's bytes in hex.
///
/// # Panics
/// When Python or grpcio is missing (`scripts/deps.sh` installs it).
pub fn run_grpcio(addr: SocketAddr, calls: &[(&str, Vec<u8>)]) -> Vec<String> {
    grpcio_lines(spawn_grpcio(addr, PUBLISH, calls, false, None))
}

/// Starts `scripts/grpc-send.py` sending `calls` to `method` on `addr`, one
/// after the other: unary, or server-streaming (`server_stream`: the last
/// field of each line lists every message, `,`-joined); over TLS when `tls`
/// names a CA certificate file and the name to check. Collect its lines
/// with [`grpcio_lines`].
pub fn spawn_grpcio(
    addr: SocketAddr,
    method: &str,
    calls: &[(&str, Vec<u8>)],
    server_stream: bool,
    tls: Option<(&std::path::Path, &str)>,
) -> std::process::Child {
    let mut input = String::new();
    for (name, message) in calls {
        input.push_str(name);
        input.push(' ');
        input.push_str(&hex(message));
        input.push('\n');
    }
    let mut command = Command::new("python3");
    command.arg(repo_root().join("scripts/grpc-send.py"));
    if server_stream {
        command.arg("--server-stream");
    }
    if let Some((cacert, authority)) = tls {
        command
            .arg("--cacert")
            .arg(cacert)
            .args(["--authority", authority]);
    }
    let mut child = command
        .arg(addr.to_string())
        .arg(method)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3 scripts/grpc-send.py");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(input.as_bytes())
            .expect("write grpc-send.py's stdin");
    }
    child
}

/// The lines a [`spawn_grpcio`] run printed, once it has ended.
///
/// # Panics
/// When it failed (`scripts/deps.sh` installs grpcio).
pub fn grpcio_lines(child: std::process::Child) -> Vec<String> {
    let out = child.wait_with_output().expect("grpc-send.py runs");
    assert!(
        out.status.success(),
        "scripts/grpc-send.py failed ({}; run scripts/deps.sh for grpcio): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Bytes as lower-case hex, as `scripts/grpc-send.py` prints them.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The path of `FanoutService/Subscribe`.
pub const SUBSCRIBE: &str = "/parallax.fanout.v1.FanoutService/Subscribe";

/// What a server-streaming call delivers, in order.
#[derive(Debug)]
pub enum StreamEvent {
    /// One message, without its length prefix.
    Message(Vec<u8>),
    /// The end: the status (trailers, or a trailers-only answer) with every
    /// byte of the body in `body`.
    End(Answer),
}

/// A server-streaming call running on its own thread; its events arrive on
/// [`Stream::next`]. With a receive window ([`open_stream`]), the client
/// reads nothing until [`Stream::resume`]: a subscriber that stops reading.
pub struct Stream {
    events: std::sync::mpsc::Receiver<StreamEvent>,
    headers: std::sync::mpsc::Receiver<()>,
    resume: Option<tokio::sync::oneshot::Sender<()>>,
    cancel: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Stream {
    /// Waits for the response headers (or a trailers-only answer, which
    /// then is the next event): the point at which a `Subscribe` stream is
    /// registered.
    ///
    /// # Panics
    /// When none arrive within `deadline`.
    pub fn headers(&self, deadline: Duration) {
        self.headers
            .recv_timeout(deadline)
            .expect("no response headers within the deadline");
    }

    /// The next event.
    ///
    /// # Panics
    /// When none arrives within `deadline`.
    pub fn next(&self, deadline: Duration) -> StreamEvent {
        self.events
            .recv_timeout(deadline)
            .unwrap_or_else(|e| panic!("no gRPC stream event within {deadline:?}: {e}"))
    }

    /// The next event, or `None` after `wait` without one.
    pub fn try_next(&self, wait: Duration) -> Option<StreamEvent> {
        self.events.recv_timeout(wait).ok()
    }

    /// Goes away: the client's connection is closed, mid-stream.
    pub fn cancel(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            let _ = cancel.send(());
        }
    }

    /// Starts reading (a stream opened with a window and paused).
    pub fn resume(&mut self) {
        if let Some(resume) = self.resume.take() {
            let _ = resume.send(());
        }
    }
}

/// Starts `call` as a server-streaming call to `addr` on a fresh HTTP/2
/// connection. With `paused_window`, the stream's receive window is that
/// many bytes and nothing is read (so no window is given back) until
/// [`Stream::resume`].
pub fn open_stream(addr: SocketAddr, call: &Call, paused_window: Option<u32>) -> Stream {
    let (events_tx, events) = std::sync::mpsc::channel();
    let (headers_tx, headers) = std::sync::mpsc::channel();
    let (resume_tx, resume_rx) = tokio::sync::oneshot::channel::<()>();
    let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel::<()>();
    let call = call.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let work = async move {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
            let mut builder = h2::client::Builder::new();
            if let Some(window) = paused_window {
                builder.initial_window_size(window);
            }
            let Ok((client, connection)) = builder.handshake::<_, Bytes>(tcp).await else {
                return;
            };
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let Ok(mut client) = client.ready().await else {
                return;
            };
            let mut request = http::Request::builder()
                .method(call.method.clone())
                .uri(format!("http://{addr}{}", call.path))
                .header("te", "trailers");
            if let Some(content_type) = &call.content_type {
                request = request.header("content-type", content_type);
            }
            for (name, value) in &call.headers {
                request = request.header(name, value);
            }
            let request = request.body(()).expect("valid request");
            let Ok((response, mut stream)) = client.send_request(request, call.body.is_empty())
            else {
                return;
            };
            if !call.body.is_empty() {
                let _ = stream.send_data(Bytes::from(call.body.clone()), true);
            }
            let Ok(response) = response.await else {
                return;
            };
            let _ = headers_tx.send(());
            if paused_window.is_some() {
                let _ = resume_rx.await;
            }
            let (parts, mut body) = response.into_parts();
            let mut data = Vec::new();
            let mut pending = Vec::new();
            let mut trailers = None;
            loop {
                match body.data().await {
                    Some(Ok(chunk)) => {
                        let _ = body.flow_control().release_capacity(chunk.len());
                        data.extend_from_slice(&chunk);
                        pending.extend_from_slice(&chunk);
                        while pending.len() >= 5 {
                            let len = u32::from_be_bytes([
                                pending[1], pending[2], pending[3], pending[4],
                            ]) as usize;
                            if pending.len() < 5 + len {
                                break;
                            }
                            let message = pending[5..5 + len].to_vec();
                            pending.drain(..5 + len);
                            let _ = events_tx.send(StreamEvent::Message(message));
                        }
                    }
                    Some(Err(_)) => break,
                    None => {
                        trailers = body.trailers().await.ok().flatten();
                        break;
                    }
                }
            }
            let status_headers: &HeaderMap = match &trailers {
                Some(t) if t.contains_key("grpc-status") => t,
                _ => &parts.headers,
            };
            let get = |map: &HeaderMap, name: &str| {
                map.get(name)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            };
            let _ = events_tx.send(StreamEvent::End(Answer {
                http_status: parts.status.as_u16(),
                content_type: get(&parts.headers, "content-type"),
                grpc_status: get(status_headers, "grpc-status"),
                grpc_message: get(status_headers, "grpc-message"),
                error_code: get(status_headers, ERROR_CODE),
                retry_pushback_ms: get(status_headers, RETRY_PUSHBACK),
                body: data,
            }));
        };
        // Cancelled: the work is dropped and the runtime with it, which
        // closes the connection (the client went away).
        runtime.block_on(async move {
            tokio::select! {
                () = work => {}
                _ = cancel_rx => {}
            }
        });
    });
    Stream {
        events,
        headers,
        resume: Some(resume_tx),
        cancel: Some(cancel_tx),
    }
}

/// A `SubscribeRequest` naming `topics`, length-prefixed: a `Subscribe`
/// call.
pub fn subscribe_call(topics: &[&str]) -> Call {
    subscribe_call_with_limit(topics, 0)
}

/// [`subscribe_call`] whose stream ends with OK after `limit`
/// notifications (0: no limit, the field is left out).
pub fn subscribe_call_with_limit(topics: &[&str], limit: u32) -> Call {
    let mut message = Vec::new();
    for topic in topics {
        prost::encoding::string::encode(1, &(*topic).to_owned(), &mut message);
    }
    if limit != 0 {
        prost::encoding::uint32::encode(2, &limit, &mut message);
    }
    Call::raw(frame(0, &message)).path(SUBSCRIBE)
}

/// The `Notification` message the contract fixes for a notification:
/// fields in field-number order, defaults omitted, `body_json` the body's
/// bytes as sent — encoded here independently of both twins.
pub fn notification_message(
    id: &str,
    topic: &str,
    published_at_unix_us: i64,
    body: &str,
) -> Vec<u8> {
    let mut out = Vec::new();
    for (field, value) in [(1, id), (2, topic)] {
        if !value.is_empty() {
            prost::encoding::string::encode(field, &value.to_owned(), &mut out);
        }
    }
    if published_at_unix_us != 0 {
        prost::encoding::int64::encode(3, &published_at_unix_us, &mut out);
    }
    if !body.is_empty() {
        prost::encoding::string::encode(4, &body.to_owned(), &mut out);
    }
    out
}

/// Runs grpcurl with server reflection (no `.proto`) against `addr`:
/// `args` are grpcurl's after the address (`list`, `describe X`, a method);
/// `stdin`, when given, is the request (`-d @`). Returns the exit code and
/// stdout and stderr together.
pub fn run_grpcurl_reflection(
    addr: SocketAddr,
    args: &[&str],
    stdin: Option<&str>,
) -> (i32, String) {
    let mut command = Command::new(grpcurl());
    command.args(["-plaintext", "-format-error"]);
    if stdin.is_some() {
        command.args(["-d", "@"]);
    }
    let mut child = command
        .arg(addr.to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start grpcurl");
    {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input
                .write_all(text.as_bytes())
                .expect("write grpcurl's stdin");
        }
    }
    let out = child.wait_with_output().expect("grpcurl runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}
