//! Test helpers: purpose-built upstreams (well-behaved and misbehaving), a
//! proxy builder, a client, and metric reading.
//!
//! ```ignore
//! let primary = upstream(|_| json(200, r#"{"a":1}"#)).start().await;
//! let shadow = upstream(|_| json(500, "{}")).delay(Duration::from_secs(2)).start().await;
//! let proxy = proxy().primary(primary.addr).shadow(shadow.addr).start().await;
//! let answer = proxy.get("/x").await;
//! ```
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parallax_proxy::h1::Http1Path;
use parallax_proxy::{Config, Proxy};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

// ---------------------------------------------------------------- upstreams

/// A request as an upstream saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A body fed through a channel: lets an upstream stream in steps.
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

/// An upstream's answer body.
pub enum Reply {
    Full(Bytes),
    Channel(ChannelBody),
    /// A body, then trailer fields (gRPC's `grpc-status`).
    Trailed(Bytes, Option<HeaderMap>),
}

impl Body for Reply {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Reply::Full(b) => {
                if b.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Ok(Frame::data(std::mem::take(b)))))
                }
            }
            Reply::Channel(c) => Pin::new(c).poll_frame(cx),
            Reply::Trailed(b, trailers) => {
                if !b.is_empty() {
                    Poll::Ready(Some(Ok(Frame::data(std::mem::take(b)))))
                } else {
                    Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Reply::Full(b) => b.is_empty(),
            Reply::Trailed(b, t) => b.is_empty() && t.is_none(),
            Reply::Channel(_) => false,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Reply::Full(b) => http_body::SizeHint::with_exact(b.len() as u64),
            Reply::Channel(_) | Reply::Trailed(..) => http_body::SizeHint::default(),
        }
    }
}

pub type Handler = Arc<dyn Fn(&Seen) -> Response<Reply> + Send + Sync>;

/// A JSON answer.
pub fn json(status: u16, body: &str) -> Response<Reply> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Reply::Full(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap()
}

/// A text answer.
pub fn text(status: u16, body: &str) -> Response<Reply> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Reply::Full(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap()
}

/// Echoes method, target and body length as JSON.
pub fn echo(seen: &Seen) -> Response<Reply> {
    json(
        200,
        &format!(
            r#"{{"method":"{}","target":"{}","length":{}}}"#,
            seen.method,
            seen.target,
            seen.body.len()
        ),
    )
}

pub fn upstream(
    handler: impl Fn(&Seen) -> Response<Reply> + Send + Sync + 'static,
) -> UpstreamBuilder {
    UpstreamBuilder {
        handler: Arc::new(handler),
        delay: Duration::ZERO,
        http2: false,
        tls: None,
    }
}

pub struct UpstreamBuilder {
    handler: Handler,
    delay: Duration,
    /// Serve HTTP/2 only (h2c, or h2 by ALPN under TLS).
    http2: bool,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// A running test upstream; stops when dropped.
pub struct TestUpstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    /// Connections accepted.
    pub connections: Arc<AtomicUsize>,
    seen: Arc<parking_lot::Mutex<Vec<Seen>>>,
    _stop: oneshot::Sender<()>,
}

impl TestUpstream {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }
}

impl UpstreamBuilder {
    /// Waits this long before answering each request.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Speaks HTTP/2 only.
    pub fn http2(mut self) -> Self {
        self.http2 = true;
        self
    }

    /// Serves TLS with `cert` (ALPN: h2 when `http2`, else http/1.1).
    pub fn tls(mut self, cert: &TestCert) -> Self {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.clone()], cert.key())
        .unwrap();
        self.tls = Some(Arc::new(config));
        self
    }

    pub async fn start(self) -> TestUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let connections2 = Arc::clone(&connections);
        let (handler, delay, http2) = (self.handler, self.delay, self.http2);
        let acceptor = self.tls.map(|mut c| {
            Arc::make_mut(&mut c).alpn_protocols = vec![if http2 {
                b"h2".to_vec()
            } else {
                b"http/1.1".to_vec()
            }];
            tokio_rustls::TlsAcceptor::from(c)
        });
        let (hits2, seen2) = (Arc::clone(&hits), Arc::clone(&seen));
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    a = listener.accept() => a.unwrap(),
                    _ = &mut stop_rx => return,
                };
                connections2.fetch_add(1, Ordering::SeqCst);
                let (handler, hits, seen) =
                    (Arc::clone(&handler), Arc::clone(&hits2), Arc::clone(&seen2));
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (handler, hits, seen) =
                            (Arc::clone(&handler), Arc::clone(&hits), Arc::clone(&seen));
                        async move {
                            let (head, body) = request.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let s = Seen {
                                method: head.method,
                                target: head
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                headers: head.headers,
                                body,
                            };
                            hits.fetch_add(1, Ordering::SeqCst);
                            seen.lock().push(s.clone());
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            Ok::<_, Infallible>(handler(&s))
                        }
                    });
                    match (acceptor, http2) {
                        (None, false) => {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        (None, true) => {
                            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        (Some(acceptor), http2) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            if http2 {
                                let _ =
                                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                        .serve_connection(TokioIo::new(stream), service)
                                        .await;
                            } else {
                                let _ = http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        TestUpstream {
            addr,
            hits,
            connections,
            seen,
            _stop: stop_tx,
        }
    }
}

/// An upstream that reads the request head and resets the connection.
pub async fn resetting() -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let hits2 = Arc::clone(&hits);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let hits = Arc::clone(&hits2);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                hits.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_zero_linger();
                drop(stream);
            });
        }
    });
    (addr, hits)
}

/// An address where nothing listens: a port bound but never listening
/// (connects are refused), held for the rest of the test process so that
/// no other test's server can be given it (a port bound and released here
/// was once taken by a concurrent test's upstream, and the "down" shadow
/// answered).
pub fn down() -> SocketAddr {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    std::mem::forget(socket);
    addr
}

// ---------------------------------------------------------------- the proxy

pub fn proxy() -> ProxyBuilder {
    ProxyBuilder {
        http1: None,
        primary: None,
        shadow: None,
        secondary: None,
        top: String::new(),
        extra: String::new(),
        tail: String::new(),
    }
}

pub struct ProxyBuilder {
    /// The HTTP/1.1 path, when the test picks one (else the proxy's default).
    http1: Option<Http1Path>,
    primary: Option<SocketAddr>,
    shadow: Option<SocketAddr>,
    secondary: Option<SocketAddr>,
    top: String,
    extra: String,
    tail: String,
}

impl ProxyBuilder {
    /// A top-level line (before the first table), e.g. `admin_token_file = "…"`.
    pub fn top(mut self, line: &str) -> Self {
        self.top += line;
        self.top.push('\n');
        self
    }

    /// Plain HTTP/1.1 clients on the raw path or on hyper's.
    pub fn http1(mut self, path: Http1Path) -> Self {
        self.http1 = Some(path);
        self
    }

    pub fn primary(mut self, addr: SocketAddr) -> Self {
        self.primary = Some(addr);
        self
    }

    pub fn shadow(mut self, addr: SocketAddr) -> Self {
        self.shadow = Some(addr);
        self
    }

    pub fn secondary(mut self, addr: SocketAddr) -> Self {
        self.secondary = Some(addr);
        self
    }

    /// A TOML line of the service table (`mirror_percent = 0`).
    pub fn set(mut self, line: &str) -> Self {
        self.extra.push_str(line);
        self.extra.push('\n');
        self
    }

    /// TOML after the service's own keys (`[[services.routes]]` tables).
    pub fn tables(mut self, toml: &str) -> Self {
        self.tail.push_str(toml);
        self.tail.push('\n');
        self
    }

    pub fn toml(&self) -> String {
        let mut t = format!(
            "admin_listen = \"127.0.0.1:0\"\n{}\n[[services]]\nname = \"svc\"\nlisten = \"127.0.0.1:0\"\n",
            self.top
        );
        t += &format!(
            "primary = \"http://{}\"\n",
            self.primary.expect("a primary")
        );
        t += &format!("shadow = \"http://{}\"\n", self.shadow.expect("a shadow"));
        if let Some(s) = self.secondary {
            t += &format!("secondary = \"http://{s}\"\n");
        }
        t += &self.extra;
        t += &self.tail;
        t
    }

    pub async fn start(self) -> TestProxy {
        proxy_with_path(&self.toml(), self.http1).await
    }
}

/// A proxy running a whole configuration file's text (its service `svc`).
pub async fn proxy_from_toml(toml: &str) -> TestProxy {
    proxy_with_path(toml, None).await
}

async fn proxy_with_path(toml: &str, http1: Option<Http1Path>) -> TestProxy {
    {
        let config = Config::parse(toml, "test.toml").unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let proxy = Proxy::bind(&config)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{toml}"));
        if let Some(path) = http1 {
            proxy.set_http1_path(path);
        }
        let addr = proxy.service_addr("svc").unwrap();
        let admin = proxy.admin_addr();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        tokio::spawn(proxy.serve(async move {
            let _ = stop_rx.await;
        }));
        TestProxy {
            addr,
            admin,
            client: client(),
            _stop: stop_tx,
        }
    }
}

pub struct TestProxy {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    client: TestClient,
    _stop: oneshot::Sender<()>,
}

impl TestProxy {
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Answer {
        send(&self.client, self.addr, request).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Request::get(path).body(Full::default()).unwrap())
            .await
    }

    pub async fn admin(&self, path: &str) -> String {
        let answer = send(
            &self.client,
            self.admin,
            Request::get(path).body(Full::default()).unwrap(),
        )
        .await;
        assert_eq!(answer.status, 200, "{path}");
        String::from_utf8(answer.body.to_vec()).unwrap()
    }

    /// Sends `request` to the admin listener, whatever the answer.
    pub async fn admin_request(&self, request: Request<Full<Bytes>>) -> Answer {
        send(&self.client, self.admin, request).await
    }

    /// POSTs to the admin listener, whatever the answer.
    pub async fn admin_post(&self, path: &str) -> Answer {
        send(
            &self.client,
            self.admin,
            Request::post(path).body(Full::default()).unwrap(),
        )
        .await
    }

    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&self.admin(path).await).unwrap()
    }

    pub async fn metrics(&self) -> String {
        self.admin("/metrics").await
    }

    /// `parallax_mirror_total{outcome}` summed over routes.
    pub async fn outcome(&self, outcome: &str) -> f64 {
        sum(
            &self.metrics().await,
            "parallax_mirror_total",
            "outcome",
            outcome,
        )
    }

    /// `parallax_comparisons_total{result}` summed over routes.
    pub async fn result(&self, result: &str) -> f64 {
        sum(
            &self.metrics().await,
            "parallax_comparisons_total",
            "result",
            result,
        )
    }

    /// Waits until `outcome` reaches `n` (mirror tasks finish after the
    /// client's answer), failing after 10 s.
    pub async fn wait_outcome(&self, outcome: &str, n: f64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.outcome(outcome).await;
            if now >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{outcome} stayed at {now}, expected {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the outcomes of all copies add up to `n`.
    pub async fn settle(&self, n: f64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.metrics().await;
            let total: f64 = parallax_conformance::metrics::samples(&text)
                .iter()
                .filter(|s| s.name == "parallax_mirror_total")
                .map(|s| s.value)
                .sum();
            if total >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "outcomes stayed at {total}, expected {n}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Sum of the series of `name` whose `label` is `value`.
pub fn sum(exposition: &str, name: &str, label: &str, value: &str) -> f64 {
    parallax_conformance::metrics::samples(exposition)
        .iter()
        .filter(|s| s.name == name && s.label(label) == Some(value))
        .map(|s| s.value)
        .sum()
}

// ---------------------------------------------------------------- a client

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// A whole answer and how long it took.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub elapsed: Duration,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn send(
    client: &TestClient,
    addr: SocketAddr,
    mut request: Request<Full<Bytes>>,
) -> Answer {
    let started = Instant::now();
    let pq = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());
    *request.uri_mut() = format!("http://{addr}{pq}").parse().unwrap();
    let response = client.request(request).await.expect("the proxy answers");
    let (head, body) = response.into_parts();
    let body = body.collect().await.expect("a whole body").to_bytes();
    Answer {
        status: head.status,
        headers: head.headers,
        body,
        elapsed: started.elapsed(),
    }
}

// ---------------------------------------------------------------- the wire

/// Sends `request` byte for byte (conformance's raw HTTP/1.1 client) on a
/// blocking thread.
pub async fn wire(
    addr: SocketAddr,
    request: parallax_conformance::Request,
) -> parallax_conformance::Response {
    tokio::task::spawn_blocking(move || parallax_conformance::http::send(addr, &request))
        .await
        .unwrap()
}

/// What must be identical between a direct and a proxied answer: status,
/// headers without hop-by-hop ones and `Date` (names lower-cased, sorted),
/// body.
pub fn comparable(
    response: &parallax_conformance::Response,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    const SKIP: [&str; 8] = [
        "date",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
    ];
    let mut headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| !SKIP.contains(&k.as_str()))
        .collect();
    headers.sort();
    (response.status, headers, response.body.clone())
}

// ---------------------------------------------------- a client we did not write

/// Sends `requests` to `addr` with Python's `http.client`
/// (`scripts/http-send.py`), one connection each; an exchange Python could
/// not complete is an `Err` with its message.
pub async fn python_send(
    addr: SocketAddr,
    requests: Vec<parallax_conformance::Request>,
) -> Vec<Result<parallax_conformance::Response, String>> {
    use base64::Engine;
    use std::io::Write;
    let b64 = base64::engine::general_purpose::STANDARD;
    let input: String = requests
        .iter()
        .map(|r| {
            serde_json::json!({
                "method": r.method,
                "path": r.path,
                "headers": r.headers,
                "body_b64": b64.encode(&r.body),
                "chunked": r.chunked,
            })
            .to_string()
                + "\n"
        })
        .collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/http-send.py");
    let output = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .arg(addr.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs (scripts/deps.sh installs it)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "http-send.py failed");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(e) = v["error"].as_str() {
                return Err(e.to_owned());
            }
            Ok(parallax_conformance::Response {
                status: v["status"].as_u64().unwrap() as u16,
                headers: v["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| (h[0].as_str().unwrap().into(), h[1].as_str().unwrap().into()))
                    .collect(),
                body: b64.decode(v["body_b64"].as_str().unwrap()).unwrap(),
            })
        })
        .collect()
}

// ------------------------------------------------------------ certificates

/// A self-signed certificate for `localhost` and 127.0.0.1, written to PEM
/// files in a temporary directory.
pub struct TestCert {
    pub cert: rustls::pki_types::CertificateDer<'static>,
    key_der: Vec<u8>,
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
}

impl TestCert {
    pub fn new(name: &str) -> Self {
        let generated = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .unwrap();
        let dir = std::env::temp_dir().join(format!("parallax-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert_file = dir.join("cert.pem");
        let key_file = dir.join("key.pem");
        std::fs::write(&cert_file, generated.cert.pem()).unwrap();
        std::fs::write(&key_file, generated.signing_key.serialize_pem()).unwrap();
        Self {
            cert: generated.cert.der().clone(),
            key_der: generated.signing_key.serialize_der(),
            cert_file,
            key_file,
        }
    }

    pub fn key(&self) -> rustls::pki_types::PrivateKeyDer<'static> {
        rustls::pki_types::PrivateKeyDer::Pkcs8(self.key_der.clone().into())
    }
}

// ---------------------------------------------------------------- raw HTTP/1.1

/// An HTTP/1.1 upstream written on bare sockets, for what hyper's server
/// would not send (close-framed or hand-chunked answers): reads each
/// request (head and `Content-Length` body), keeps its bytes, and writes
/// `answer(request line)`; closes after each answer when `close_each`.
pub struct RawUpstream {
    pub addr: SocketAddr,
    requests: Arc<parking_lot::Mutex<Vec<Vec<u8>>>>,
    connections: Arc<AtomicUsize>,
}

impl RawUpstream {
    /// Every request's bytes, in arrival order.
    pub fn requests(&self) -> Vec<Vec<u8>> {
        self.requests.lock().clone()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

pub async fn raw_upstream(answer: fn(&str) -> Vec<u8>, close_each: bool) -> RawUpstream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let (seen, count) = (Arc::clone(&requests), Arc::clone(&connections));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(len) = whole_request(&buf) else {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let request: Vec<u8> = buf.drain(..len).collect();
                    let line = String::from_utf8_lossy(&request)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    seen.lock().push(request);
                    if stream.write_all(&answer(&line)).await.is_err() || close_each {
                        return;
                    }
                }
            });
        }
    });
    RawUpstream {
        addr,
        requests,
        connections,
    }
}

/// The length of the whole request (head and `Content-Length` body) at the
/// start of `buf`, once it is all there.
fn whole_request(buf: &[u8]) -> Option<usize> {
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&buf[..head]).to_ascii_lowercase();
    let body = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    (buf.len() >= head + body).then_some(head + body)
}

/// Writes `parts` to the proxy with `gap` between them, then reads until
/// the proxy closes or is quiet for `quiet`: everything it answered.
pub async fn talk(addr: SocketAddr, parts: &[&[u8]], gap: Duration, quiet: Duration) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        if stream.write_all(part).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        match tokio::time::timeout(quiet, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&chunk[..n]),
            _ => return answer,
        }
    }
}

/// The status lines in `answer`, in order (`HTTP/1.x NNN …` up to its
/// CRLF, wherever it starts: a body without a final CRLF runs into the
/// next answer's status line).
pub fn status_lines(answer: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(answer);
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let mut at = 0;
    while let Some(found) = text[at..].find("HTTP/1.") {
        let start = at + found;
        let status = bytes.get(start + 7..start + 13).unwrap_or(b"");
        let is_status = status.len() == 6
            && status[0].is_ascii_digit()
            && status[1] == b' '
            && status[2..5].iter().all(u8::is_ascii_digit)
            && matches!(status[5], b' ' | b'\r');
        if is_status {
            let end = text[start..].find("\r\n").map_or(text.len(), |e| start + e);
            lines.push(text[start..end].to_owned());
            at = end;
        } else {
            at = start + 7;
        }
    }
    lines
}
