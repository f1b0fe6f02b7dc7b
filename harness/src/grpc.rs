//! `[traffic.grpc]`: unary and server-streaming gRPC calls as an
//! experiment's traffic.
//!
//! A gRPC service is loaded by calls, not by paths: each call names its
//! method (`parallax.ingest.v1.IngestService/Publish`), its request message
//! as proto3 JSON (with the same `{{value}}` placeholders as HTTP
//! templates), and metadata. The messages' types come from the method's
//! descriptor: this project's own `.proto` files, or a descriptor set of
//! yours (`protoc --include_imports --descriptor_set_out=api.pb`, `buf
//! build -o api.pb`).
//!
//! The calls are compiled into the HTTP template machinery
//! ([`TemplateWorkload`]: path `/<method>`, headers = metadata, body = the
//! JSON), so value generators, weights and seeds mean exactly what they
//! mean for HTTP, and the same slot renders the same call for both
//! backends in direct mode. Each rendered JSON is then encoded as the
//! method's input message and sent by [`parallax_loadgen::grpc`] over
//! HTTP/2 on the open model. A template without placeholders is encoded
//! once.
//!
//! For shadow mode the proxy speaks HTTP/2 to both upstreams and compares
//! answers as gRPC: `grpc-status`, `grpc-message` and every response
//! message decoded as the method's output type ([`GrpcSource::routes`]
//! gives each method a route whose `protobuf_message` is that type), so
//! mismatches are reported at protobuf field paths (`/0/accepted`).
//!
//! A method whose descriptor says `server_streaming` (the fan-out's
//! `Subscribe`) is called the same way: one request message, and the
//! answer read message by message to its trailers within `[load]
//! timeout_ms` (a stream not ended by then is a timeout). Its calls carry
//! their messages as units ([`Calls::streaming`]). In shadow mode
//! the proxy compares such a stream once both copies ended; the shadow's
//! copy is given as long as the call itself (`shadow_timeout_ms` raised to
//! `timeout_ms` plus a margin), or every stream would be a shadow timeout.
//!
//! # Streams held while requests publish (`streams`)
//! A subscription stream delivers what is published while it is open, so
//! its calls and the publishing requests run in one phase, in an explicit
//! order ([`GrpcSource::run_streams`]): `streams` calls are opened at once;
//! the requests (`[[traffic.requests]]`, sent to each backend's
//! `{http_listen}`) start only when every backend's `streams_gauge` on that
//! address counts them all; then one publisher per backend sends them, in
//! slot order, at the phase's rate, for the phase's duration and on until
//! that backend's gauge says its streams ended; each stream ends on its
//! own `limit`.
//! In shadow mode the streams go through the proxy (one copy to each
//! backend) and each backend gets every publish itself, with the same
//! bytes, in the same order: both copies of a stream were open before the
//! first publish and take the same first `limit` notifications, so a
//! correct pair matches message for message. Publishing while streams
//! open would make the copies' first messages differ by timing alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use parallax_compare::config::CompareConfig;
use parallax_loadgen::grpc::{self as lg, Call, Calls, GrpcConfig, Outcome, Target};
use parallax_loadgen::open::OpenReport;
use parallax_loadgen::pacing::Schedule;
use parallax_proxy::config::RouteConfig;
use prost_reflect::{DescriptorPool, MessageDescriptor};
use serde::Deserialize;

use crate::experiment::{invalid, Invalid, Traffic};
use crate::traffic::TemplateWorkload;

/// `[traffic.grpc]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcTraffic {
    /// A binary `FileDescriptorSet` defining the methods, relative to the
    /// experiment file. Default: this project's own `.proto` files.
    #[serde(default)]
    pub descriptor_set: Option<PathBuf>,
    /// HTTP/2 connections the calls share. Default `2`.
    #[serde(default = "two")]
    pub connections: usize,
    /// The calls, at least one (`[[traffic.grpc.calls]]`).
    #[serde(default)]
    pub calls: Vec<GrpcCall>,
    /// Streaming calls held open while `[[traffic.requests]]` publish (see
    /// the module docs): each phase opens this many at once. Default `0`:
    /// the calls are the whole traffic.
    #[serde(default)]
    pub streams: usize,
    /// With `streams`: a gauge on each backend's `{http_listen}` `/metrics`
    /// counting its open streams (`fanout_connections`); the requests start
    /// once it reaches `streams` on every backend.
    #[serde(default)]
    pub streams_gauge: Option<String>,
}

fn two() -> usize {
    2
}

fn one() -> f64 {
    1.0
}

/// `[[traffic.grpc.calls]]`: one call template (unary or server-streaming,
/// as its method is).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcCall {
    /// For reports. Default: the method.
    #[serde(default)]
    pub name: Option<String>,
    /// Relative share of the traffic. Default `1`.
    #[serde(default = "one")]
    pub weight: f64,
    /// `package.Service/Method`. Required.
    pub method: String,
    /// The request message as proto3 JSON, `{{value}}` placeholders
    /// allowed. Either this, `message_file` or `message_bytes_file`.
    #[serde(default)]
    pub message: Option<String>,
    /// The same from a file, relative to the experiment file.
    #[serde(default)]
    pub message_file: Option<PathBuf>,
    /// An already encoded request message (binary protobuf), sent as it is.
    #[serde(default)]
    pub message_bytes_file: Option<PathBuf>,
    /// Request metadata (placeholders allowed); `-bin` keys carry base64.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// `grpc-status` codes that count as success. Default `[0]` (OK).
    #[serde(default)]
    pub ok_codes: Vec<u32>,
}

/// Metadata names gRPC or HTTP/2 own.
const RESERVED_METADATA: [&str; 5] = ["content-type", "te", "host", "grpc-timeout", "user-agent"];

/// The descriptors of a `[traffic.grpc]`.
fn pool(grpc: &GrpcTraffic, dir: &Path) -> Result<DescriptorPool, Invalid> {
    match &grpc.descriptor_set {
        None => Ok(parallax_compare::protobuf::project().clone()),
        Some(p) => lg::load_descriptors(&dir.join(p))
            .map_err(|e| invalid("traffic.grpc.descriptor_set", e)),
    }
}

/// The HTTP templates the calls stand for (see the module docs), as a
/// traffic section of its own.
fn as_templates(traffic: &Traffic, grpc: &GrpcTraffic) -> Result<Traffic, Invalid> {
    let mut requests = Vec::new();
    for (i, c) in grpc.calls.iter().enumerate() {
        let mut t = toml::Table::new();
        t.insert(
            "name".into(),
            c.name.clone().unwrap_or_else(|| c.method.clone()).into(),
        );
        t.insert("weight".into(), toml::Value::Float(c.weight));
        t.insert("method".into(), "POST".into());
        t.insert(
            "path".into(),
            format!("/{}", c.method.trim_start_matches('/')).into(),
        );
        let headers: toml::Table = c
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), toml::Value::String(v.clone())))
            .collect();
        t.insert("headers".into(), toml::Value::Table(headers));
        if let Some(m) = &c.message {
            t.insert("body".into(), m.clone().into());
        }
        if let Some(f) = &c.message_file {
            t.insert("body_file".into(), f.display().to_string().into());
        }
        requests.push(
            toml::Value::Table(t)
                .try_into()
                .map_err(|e| invalid(format_args!("traffic.grpc.calls[{i}]"), e))?,
        );
    }
    let mut derived = traffic.clone();
    derived.grpc = None;
    derived.requests = requests;
    Ok(derived)
}

/// Field names of the derived templates, as the user wrote them.
fn rename(e: Invalid) -> Invalid {
    let field = e
        .field
        .replace("traffic.requests", "traffic.grpc.calls")
        .replace(".path", ".method")
        .replace(".headers", ".metadata")
        .replace(".body_file", ".message_file")
        .replace(".body", ".message");
    Invalid {
        field,
        reason: e.reason,
    }
}

/// Checks `[traffic.grpc]` (called by [`crate::traffic::validate`]).
pub fn validate(traffic: &Traffic, grpc: &GrpcTraffic, dir: &Path) -> Result<(), Invalid> {
    GrpcSource::new("check", traffic, grpc, dir, &[]).map(|_| ())
}

/// One call template, compiled.
struct Compiled {
    input: MessageDescriptor,
    output: String,
    /// The method streams its answer (from its descriptor).
    server_streaming: bool,
    path: String,
    /// The message, when it is the same for every slot.
    fixed: Option<Bytes>,
    ok_codes: Vec<u32>,
}

/// The publishing requests of a `streams` experiment.
struct Publish {
    workload: TemplateWorkload,
    /// Each template's HTTP method and success statuses (empty: 2xx/3xx).
    methods: Vec<String>,
    ok: Vec<Vec<u16>>,
}

/// `[traffic.grpc]` as calls for [`parallax_loadgen::grpc`].
pub struct GrpcSource {
    templates: Arc<TemplateWorkload>,
    calls: Vec<Compiled>,
    /// With `streams`: the requests that publish while streams are open.
    publish: Option<Arc<Publish>>,
    streams: usize,
    streams_gauge: String,
    connections: usize,
    descriptor_set: Option<PathBuf>,
}

impl GrpcSource {
    /// Compiles and checks the calls: every method is found, not client
    /// streaming, and two slots' messages encode as its input type.
    pub fn new(
        name: &str,
        traffic: &Traffic,
        grpc: &GrpcTraffic,
        dir: &Path,
        routes: &[&str],
    ) -> Result<Self, Invalid> {
        if grpc.streams == 0 && !traffic.requests.is_empty() {
            return Err(invalid(
                "traffic.requests",
                "an experiment sends HTTP requests or gRPC calls, not both; keep [[traffic.requests]] or [traffic.grpc], or set traffic.grpc.streams to hold streaming calls open while the requests publish",
            ));
        }
        if grpc.streams > 0 {
            if traffic.requests.is_empty() {
                return Err(invalid(
                    "traffic.requests",
                    "traffic.grpc.streams holds streams open while [[traffic.requests]] publish; add the requests that make the server send",
                ));
            }
            if grpc.streams > 10_000 {
                return Err(invalid(
                    "traffic.grpc.streams",
                    format_args!("{} is not within 1-10000", grpc.streams),
                ));
            }
            if grpc.streams_gauge.as_deref().unwrap_or("").is_empty() {
                return Err(invalid(
                    "traffic.grpc.streams_gauge",
                    "missing: name the backend's gauge of open streams (e.g. \"fanout_connections\"), so the requests wait until every stream is open",
                ));
            }
        }
        if grpc.calls.is_empty() {
            return Err(invalid(
                "traffic.grpc.calls",
                "no call; add at least one [[traffic.grpc.calls]] with a `method` and a `message`",
            ));
        }
        if grpc.connections == 0 || grpc.connections > 1024 {
            return Err(invalid(
                "traffic.grpc.connections",
                format_args!("{} is not within 1-1024", grpc.connections),
            ));
        }
        let pool = pool(grpc, dir)?;
        let publish = if grpc.streams > 0 {
            let mut requests = traffic.clone();
            requests.grpc = None;
            let workload = TemplateWorkload::new(name, &requests, dir, routes)?;
            let methods = traffic.requests.iter().map(|t| t.method.clone()).collect();
            let ok = traffic
                .requests
                .iter()
                .map(|t| t.ok_status.clone())
                .collect();
            Some(Arc::new(Publish {
                workload,
                methods,
                ok,
            }))
        } else {
            None
        };
        let derived = as_templates(traffic, grpc)?;
        let templates = TemplateWorkload::new(name, &derived, dir, routes).map_err(rename)?;
        let mut calls = Vec::new();
        for (i, c) in grpc.calls.iter().enumerate() {
            let field = format!("traffic.grpc.calls[{i}]");
            let shape = lg::method_shape(&pool, &c.method)
                .map_err(|e| invalid(format_args!("{field}.method"), e))?;
            if grpc.streams > 0 && !shape.server_streaming {
                return Err(invalid(
                    format_args!("{field}.method"),
                    format_args!("{} is unary; with traffic.grpc.streams every call must be server-streaming (it is held open while the requests publish)", c.method),
                ));
            }
            for key in c.metadata.keys() {
                let k = key.to_ascii_lowercase();
                if RESERVED_METADATA.contains(&k.as_str()) || k.starts_with(':') {
                    return Err(invalid(
                        format_args!("{field}.metadata"),
                        format_args!("{key:?} is set by gRPC itself; remove it"),
                    ));
                }
            }
            let sources = [
                c.message.is_some(),
                c.message_file.is_some(),
                c.message_bytes_file.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err(invalid(
                    &field,
                    "give exactly one of `message` (proto3 JSON), `message_file` or `message_bytes_file`",
                ));
            }
            let fixed = match &c.message_bytes_file {
                Some(f) => Some(Bytes::from(std::fs::read(dir.join(f)).map_err(|e| {
                    invalid(
                        format_args!("{field}.message_bytes_file"),
                        format_args!(
                            "cannot read {} ({e}); paths are relative to the experiment file",
                            dir.join(f).display()
                        ),
                    )
                })?)),
                None => None,
            };
            calls.push(Compiled {
                input: shape.input,
                output: shape.output.full_name().to_owned(),
                server_streaming: shape.server_streaming,
                path: format!("/{}", c.method.trim_start_matches('/')),
                fixed,
                ok_codes: if c.ok_codes.is_empty() {
                    vec![0]
                } else {
                    c.ok_codes.clone()
                },
            });
        }
        let mut source = Self {
            templates: Arc::new(templates),
            calls,
            publish,
            streams: grpc.streams,
            streams_gauge: grpc.streams_gauge.clone().unwrap_or_default(),
            connections: grpc.connections,
            descriptor_set: grpc.descriptor_set.as_ref().map(|p| dir.join(p)),
        };
        // A template that renders the same message for every slot (no
        // placeholder in it) is encoded once; any other is checked on two
        // slots now, so a message that does not encode fails here.
        for (i, c) in grpc.calls.iter().enumerate() {
            if source.calls[i].fixed.is_some() {
                continue;
            }
            let alone = GrpcTraffic {
                calls: vec![c.clone()],
                ..grpc.clone()
            };
            let one = TemplateWorkload::new(name, &as_templates(traffic, &alone)?, dir, &[])
                .map_err(rename)?;
            for n in [0u64, 1 << 40] {
                let json = one.render(n).body.unwrap_or_default();
                let text = String::from_utf8_lossy(&json);
                lg::encode_json(&source.calls[i].input, &text).map_err(|e| {
                    invalid(
                        format_args!("traffic.grpc.calls[{i}].message"),
                        format_args!("{e} (the message, rendered for slot {n}, must be proto3 JSON of the method's input)"),
                    )
                })?;
            }
        }
        for (i, c) in grpc.calls.iter().enumerate() {
            let constant = c
                .message
                .as_deref()
                .map(|m| !m.contains("{{"))
                .unwrap_or(false);
            if constant {
                let json = c.message.as_deref().unwrap_or_default();
                let bytes = lg::encode_json(&source.calls[i].input, json)
                    .map_err(|e| invalid(format_args!("traffic.grpc.calls[{i}].message"), e))?;
                source.calls[i].fixed = Some(Bytes::from(bytes));
            }
        }
        Ok(source)
    }

    /// The HTTP templates the calls were compiled into (for latency by route).
    pub fn templates(&self) -> Arc<TemplateWorkload> {
        Arc::clone(&self.templates)
    }

    /// Whether some call's method streams its answer.
    pub fn streaming(&self) -> bool {
        self.calls.iter().any(|c| c.server_streaming)
    }

    /// The descriptor set the methods come from (`None`: the project's).
    pub fn descriptor_set(&self) -> Option<&Path> {
        self.descriptor_set.as_deref()
    }

    /// One route per method (unless `routes` already has its path), with
    /// `compare` plus the method's response type, so the proxy decodes each
    /// answer's messages and diffs them field by field.
    pub fn routes(&self, compare: &CompareConfig, routes: &[RouteConfig]) -> Vec<RouteConfig> {
        let mut out = routes.to_vec();
        for c in &self.calls {
            if out.iter().any(|r| r.template == c.path) {
                continue;
            }
            let mut rules = compare.clone();
            rules.protobuf_message = Some(c.output.clone());
            if let Some(d) = &self.descriptor_set {
                rules.descriptor_set = Some(d.display().to_string());
            }
            out.push(RouteConfig {
                template: c.path.clone(),
                compare: Some(rules),
            });
        }
        out
    }

    /// Sends the calls of slots `first..` to `url` (`http://` h2c or
    /// `https://`, the latter with `tls`) on the open model for `secs`.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        self: &Arc<Self>,
        url: &str,
        tls: Option<lg::rustls::ClientConfig>,
        rate: f64,
        secs: f64,
        first: u64,
        concurrency: usize,
        timeout: Duration,
    ) -> anyhow::Result<OpenReport> {
        let mut config = self.config(url, tls, rate, secs)?;
        config.concurrency = concurrency;
        config.timeout = timeout;
        config.first_slot = first;
        let report = self.send(&config)?;
        let by_code = report.by_code();
        let mut open = report.to_open_report();
        if open.errors > 0 {
            open.error_samples
                .insert(0, format!("gRPC outcomes: {by_code:?}"));
        }
        Ok(open)
    }

    /// The loader's configuration for `rate` calls a second for `secs` to
    /// `url`, with this traffic's connections; the rest at their defaults.
    pub fn config(
        &self,
        url: &str,
        tls: Option<lg::rustls::ClientConfig>,
        rate: f64,
        secs: f64,
    ) -> anyhow::Result<GrpcConfig> {
        let target = Target::parse(url, tls)?;
        let mut config = GrpcConfig::new(
            target,
            Schedule {
                rate_per_sec: rate,
                ramp: Duration::ZERO,
                duration: Duration::try_from_secs_f64(secs)
                    .map_err(|_| anyhow::anyhow!("{secs} is not a duration in seconds"))?,
                max_requests: u64::MAX,
            },
        );
        config.connections = self.connections;
        Ok(config)
    }

    /// Whether the calls are streams held while requests publish.
    pub fn publishes(&self) -> bool {
        self.publish.is_some()
    }

    /// One phase of a `streams` experiment (see the module docs): opens the
    /// streams to `url`, waits until every backend in `http` (`host:port`
    /// of each one's `{http_listen}`) counts them on its gauge, then
    /// publishes slots `first..` to each of them at `rate` for `secs`, and
    /// reads every stream to its end (at most `timeout` each). The report
    /// is the streams': a call per stream, its messages as units; publishes
    /// that failed are errors too.
    pub fn run_streams(
        self: &Arc<Self>,
        url: &str,
        http: &[String],
        rate: f64,
        secs: f64,
        first: u64,
        timeout: Duration,
    ) -> anyhow::Result<OpenReport> {
        let publish = self
            .publish
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("traffic.grpc.streams is 0: nothing publishes"))?;
        if http.is_empty() {
            anyhow::bail!("the backends' commands never say {{http_listen}}: the requests that publish need each backend's HTTP address");
        }
        // All the streams at once (a burst), each held by a sender of its own.
        let burst = 1000.0;
        let mut config = self.config(url, None, burst, self.streams as f64 / burst)?;
        config.schedule.max_requests = self.streams as u64;
        config.concurrency = self.streams;
        config.timeout = timeout;
        config.first_slot = first;
        config.late_after = timeout;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let source = Arc::clone(self);
        let calls = runtime.spawn(async move { lg::run(source, &config).await });
        let deadline = std::time::Instant::now() + timeout;
        for addr in http {
            loop {
                let open = gauge(addr, &self.streams_gauge);
                if open >= self.streams as f64 {
                    break;
                }
                if std::time::Instant::now() > deadline || calls.is_finished() {
                    calls.abort();
                    anyhow::bail!(
                        "{addr}: {} stayed at {open}, below the {} streams opened, for {timeout:?}: the streams did not all reach it (is traffic.grpc.streams_gauge the right gauge?)",
                        self.streams_gauge,
                        self.streams
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let publishers: Vec<_> = http
            .iter()
            .map(|addr| {
                let publish = Arc::clone(publish);
                let addr = addr.clone();
                let gauge = self.streams_gauge.clone();
                std::thread::spawn(move || publish.paced(&addr, &gauge, rate, secs, first, timeout))
            })
            .collect();
        let mut failed = Vec::new();
        for p in publishers {
            failed.extend(
                p.join()
                    .map_err(|_| anyhow::anyhow!("a publisher panicked"))?,
            );
        }
        let report = runtime.block_on(calls)??;
        let by_code = report.by_code();
        let mut open = report.to_open_report();
        if open.errors > 0 {
            open.error_samples
                .insert(0, format!("gRPC outcomes: {by_code:?}"));
        }
        open.errors += failed.len() as u64;
        open.error_samples
            .extend(failed.into_iter().take(5).map(|e| format!("publish: {e}")));
        Ok(open)
    }

    /// Runs `config` with these calls on a runtime of its own.
    pub fn send(self: &Arc<Self>, config: &GrpcConfig) -> anyhow::Result<lg::GrpcReport> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        Ok(runtime.block_on(lg::run(Arc::clone(self), config))?)
    }
}

/// The sum of the samples of gauge `name` on `addr`'s `/metrics` (0 when
/// it cannot be read yet).
fn gauge(addr: &str, name: &str) -> f64 {
    match crate::child::http_get(addr, "/metrics", Duration::from_secs(2)) {
        Ok((200, body)) => crate::prom::parse(&String::from_utf8_lossy(&body))
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum(),
        _ => 0.0,
    }
}

impl Publish {
    /// Sends slots `first..` to `addr` one after another, slot `i` not
    /// before `i / rate` seconds: one publisher keeps the order the streams
    /// see the same on every backend. After `rate × secs` of them it goes
    /// on while `gauge_name` on `addr` still counts open streams (a phase
    /// shorter than the streams' `limit` must not leave them waiting), for
    /// `timeout` at most. Returns what failed.
    fn paced(
        &self,
        addr: &str,
        gauge_name: &str,
        rate: f64,
        secs: f64,
        first: u64,
        timeout: Duration,
    ) -> Vec<String> {
        let count = (rate * secs).round() as u64;
        let start = std::time::Instant::now();
        let mut failed = Vec::new();
        for i in 0.. {
            if i >= count && (start.elapsed() > timeout || gauge(addr, gauge_name) < 1.0) {
                break;
            }
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                std::thread::sleep(wait);
            }
            let r = self.workload.render(first + i);
            let method = self.methods.get(r.template).map_or("GET", String::as_str);
            match post(
                addr,
                method,
                &r.path,
                &r.headers,
                r.body.as_deref(),
                timeout,
            ) {
                Ok(status) => {
                    let ok = match self.ok.get(r.template) {
                        Some(codes) if !codes.is_empty() => codes.contains(&status),
                        _ => (200..400).contains(&status),
                    };
                    if !ok {
                        failed.push(format!("{addr}: {method} {} answered {status}", r.path));
                    }
                }
                Err(e) => failed.push(format!("{addr}: {method} {}: {e}", r.path)),
            }
        }
        failed
    }
}

/// One HTTP/1.0 request (so the answer is never chunked); its status.
fn post(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let target = std::net::ToSocketAddrs::to_socket_addrs(addr)?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{addr} resolves to nothing")))?;
    let mut stream = std::net::TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    String::from_utf8_lossy(&answer)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status in the answer"))
}

impl Calls for GrpcSource {
    fn call(&self, n: u64) -> Result<Call, (usize, String)> {
        let rendered = self.templates.render(n);
        let t = rendered.template;
        let c = &self.calls[t];
        let message = match &c.fixed {
            Some(bytes) => bytes.clone(),
            None => {
                let json = rendered.body.unwrap_or_default();
                Bytes::from(
                    lg::encode_json(&c.input, &String::from_utf8_lossy(&json))
                        .map_err(|e| (t, e))?,
                )
            }
        };
        let metadata = rendered
            .headers
            .into_iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from_bytes(k.as_bytes()).ok()?,
                    HeaderValue::from_str(&v).ok()?,
                ))
            })
            .collect();
        Ok(Call {
            template: rendered.template,
            path: c.path.clone(),
            metadata,
            message,
        })
    }

    fn ok(&self, template: usize, outcome: Outcome) -> bool {
        let codes = self.calls.get(template).map(|c| c.ok_codes.as_slice());
        matches!(outcome, Outcome::Status(code) if codes.unwrap_or(&[0]).contains(&code))
    }

    fn streaming(&self) -> bool {
        GrpcSource::streaming(self)
    }
}

/// The workload of an experiment: its HTTP templates, or its gRPC calls
/// (and the templates they were compiled into, for latency by route).
pub type Workloads = (Arc<TemplateWorkload>, Option<Arc<GrpcSource>>);

/// [`Workloads`] of `experiment`, latency broken down by `routes`.
pub fn workload(
    name: &str,
    experiment: &crate::experiment::Experiment,
    routes: &[&str],
) -> Result<Workloads, Invalid> {
    let traffic = &experiment.traffic;
    let dir = experiment.dir();
    match &traffic.grpc {
        Some(g) => {
            let source = Arc::new(GrpcSource::new(name, traffic, g, &dir, routes)?);
            Ok((source.templates(), Some(source)))
        }
        None => Ok((
            Arc::new(TemplateWorkload::new(name, traffic, &dir, routes)?),
            None,
        )),
    }
}

/// What a streaming call's shadow copy may take beyond the call's timeout
/// (the mirror starts it a little after the client's).
const STREAM_MARGIN_MS: u64 = 2_000;

/// A shadow-mode proxy for gRPC traffic: HTTP/2 to every upstream, and a
/// route per method whose answers decode as its response type (see
/// [`GrpcSource::routes`]). Nothing changes for HTTP traffic.
pub fn shadow_service(
    experiment: &crate::experiment::Experiment,
    service: &mut crate::proxyconf::ProxyService,
) -> anyhow::Result<()> {
    let Some(g) = &experiment.traffic.grpc else {
        return Ok(());
    };
    let source = GrpcSource::new("proxy", &experiment.traffic, g, &experiment.dir(), &[])
        .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.reason))?;
    service.http2 = true;
    service.routes = source.routes(&experiment.compare, &experiment.routes);
    if source.streaming() {
        // A stream is compared once both copies ended, and the shadow's
        // ends about when the client's does: at most the call's timeout.
        service.shadow_timeout_ms = service
            .shadow_timeout_ms
            .max(experiment.load.timeout_ms.saturating_add(STREAM_MARGIN_MS));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::Experiment;

    const BACKENDS: &str = r#"
        [baseline]
        command = ["./old", "--grpc-listen", "{listen}"]
        [candidate]
        command = ["./new", "--grpc-listen", "{listen}"]
        [traffic.values]
        batch = { kind = "sequence" }
    "#;

    const CALL: &str = r#"
        [[traffic.grpc.calls]]
        method = "parallax.ingest.v1.IngestService/Publish"
        message = '{"events":[{"eventId":"g{{batch}}","tenantId":"t","type":"x","occurredAtUnixMs":"1"}]}'
        metadata = { x-batch = "{{batch}}" }
    "#;

    fn parsed(text: &str) -> Experiment {
        let x = Experiment::parse(&format!("{BACKENDS}\n{text}"), "e.toml").unwrap();
        x.validate()
            .map_err(|e| format!("{}: {}", e.field, e.reason))
            .unwrap();
        x
    }

    fn error(text: &str) -> String {
        let x = Experiment::parse(&format!("{BACKENDS}\n{text}"), "e.toml").unwrap();
        let e = x.validate().expect_err("accepted");
        format!("{}: {}", e.field, e.reason)
    }

    #[test]
    fn each_slot_renders_and_encodes_its_own_call() {
        let x = parsed(CALL);
        let (_, source) = workload("t", &x, &[]).unwrap();
        let source = source.expect("a gRPC source");
        let call = source.call(5).unwrap();
        assert_eq!(call.path, "/parallax.ingest.v1.IngestService/Publish");
        assert_eq!(call.metadata[0].0, "x-batch");
        assert_eq!(call.metadata[0].1, "5");
        let input = parallax_compare::protobuf::project()
            .get_message_by_name("parallax.ingest.v1.EventBatch")
            .unwrap();
        let decoded = prost_reflect::DynamicMessage::decode(input, call.message.clone()).unwrap();
        let json = serde_json::to_value(&decoded).unwrap();
        assert_eq!(json["events"][0]["eventId"], "g5");
        // The same slot, the same bytes (both backends get the same call).
        assert_eq!(source.call(5).unwrap().message, call.message);
        assert_ne!(source.call(6).unwrap().message, call.message);
        assert!(source.ok(0, Outcome::Status(0)));
        assert!(!source.ok(0, Outcome::Status(14)));
    }

    #[test]
    fn each_method_gets_a_route_decoding_its_response_type() {
        let x = parsed(CALL);
        let mut s =
            crate::proxyconf::ProxyService::new("s", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3");
        shadow_service(&x, &mut s).unwrap();
        assert!(s.http2);
        assert_eq!(s.routes.len(), 1);
        assert_eq!(
            s.routes[0].template,
            "/parallax.ingest.v1.IngestService/Publish"
        );
        assert_eq!(
            s.routes[0]
                .compare
                .as_ref()
                .unwrap()
                .protobuf_message
                .as_deref(),
            Some("parallax.ingest.v1.IngestResponse")
        );
        // The proxy accepts what the harness writes.
        crate::proxyconf::render("127.0.0.1:4", &[s]).unwrap();
    }

    const SUBSCRIBE: &str = r#"
        [load]
        timeout_ms = 20000
        shadow_timeout_ms = 3000
        [[traffic.grpc.calls]]
        method = "parallax.fanout.v1.FanoutService/Subscribe"
        message = '{"topics":["run"],"limit":5}'
    "#;

    #[test]
    fn a_server_streaming_method_is_called_and_its_shadow_copy_may_last_the_call() {
        let x = parsed(SUBSCRIBE);
        let (_, source) = workload("t", &x, &[]).unwrap();
        let source = source.expect("a gRPC source");
        assert!(source.streaming());
        let mut s =
            crate::proxyconf::ProxyService::new("s", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3");
        s.shadow_timeout_ms = x.load.shadow_timeout_ms;
        shadow_service(&x, &mut s).unwrap();
        assert_eq!(s.shadow_timeout_ms, 20_000 + STREAM_MARGIN_MS);
        let rules = s.routes[0].compare.as_ref().unwrap();
        assert_eq!(
            rules.protobuf_message.as_deref(),
            Some("parallax.fanout.v1.Notification")
        );
        crate::proxyconf::render("127.0.0.1:4", &[s]).unwrap();
        // A unary method leaves the experiment's shadow timeout alone.
        let x = parsed(CALL);
        let mut s =
            crate::proxyconf::ProxyService::new("s", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3");
        s.shadow_timeout_ms = 3000;
        shadow_service(&x, &mut s).unwrap();
        assert_eq!(s.shadow_timeout_ms, 3000);
    }

    const PUBLISH: &str = r#"
        [[traffic.requests]]
        method = "POST"
        path = "/v1/notify"
        body = '{"id":"n-{{batch}}","topic":"run","body":1}'
    "#;

    #[test]
    fn streams_held_while_requests_publish_need_streaming_calls_and_a_gauge() {
        let held = format!(
            "[traffic.grpc]\nstreams = 3\nstreams_gauge = \"open\"\n{SUBSCRIBE}\n{PUBLISH}"
        );
        let x = parsed(&held);
        let (_, source) = workload("t", &x, &[]).unwrap();
        assert!(source.expect("a gRPC source").publishes());

        let e = error(&held.replace("streams_gauge = \"open\"", ""));
        assert!(e.starts_with("traffic.grpc.streams_gauge: "), "{e}");
        let e = error(&held.replace(PUBLISH, ""));
        assert!(e.starts_with("traffic.requests: "), "{e}");
        assert!(e.contains("add the requests"), "{e}");
        let e = error(&format!(
            "[traffic.grpc]\nstreams = 3\nstreams_gauge = \"open\"\n{CALL}\n{PUBLISH}"
        ));
        assert!(e.starts_with("traffic.grpc.calls[0].method: "), "{e}");
        assert!(e.contains("is unary"), "{e}");
        let e = error(&format!("{SUBSCRIBE}\n{PUBLISH}"));
        assert!(e.contains("traffic.grpc.streams"), "{e}");
    }

    #[test]
    fn mistakes_name_the_call_field_and_the_fix() {
        let e = error(&CALL.replace("IngestService/Publish", "IngestService/Send"));
        assert!(e.starts_with("traffic.grpc.calls[0].method: "), "{e}");
        assert!(e.contains("it has: Publish"), "{e}");
        let e = error(&CALL.replace("parallax.ingest.v1.IngestService", "x.Nope"));
        assert!(e.contains("parallax.ingest.v1.IngestService"), "{e}");
        let e = error(&CALL.replace("eventId", "eventIdd"));
        assert!(e.starts_with("traffic.grpc.calls[0].message: "), "{e}");
        assert!(e.contains("eventIdd"), "{e}");
        let e = error(&CALL.replace("x-batch = \"{{batch}}\"", "x-batch = \"{{nope}}\""));
        assert!(e.starts_with("traffic.grpc.calls[0].metadata"), "{e}");
        let e = error(&CALL.replace("x-batch", "content-type"));
        assert!(e.contains("set by gRPC itself"), "{e}");
        let e = error(&format!("{CALL}\n[[traffic.requests]]\npath = \"/x\""));
        assert!(e.starts_with("traffic.requests: "), "{e}");
        let e = error("[traffic.grpc]\ncalls = []");
        assert!(e.starts_with("traffic.grpc.calls: "), "{e}");
    }
}
