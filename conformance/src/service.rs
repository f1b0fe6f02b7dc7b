//! Starting a twin as a subprocess on `127.0.0.1:0` and talking to it.
//!
//! ```no_run
//! # use parallax_conformance::{service, Implementation, Request};
//! let ingest = service(&Implementation::go()).produce_timeout_ms(2000).spawn();
//! let response = ingest.send(&Request::get("/healthz"));
//! assert_eq!(response.status, 200);
//!
//! let cache = service(&Implementation::rust_cache()).flag("--shards", 1).spawn();
//! assert_eq!(cache.send(&Request::get("/readyz")).status, 200);
//! ```
//!
//! What is wired up follows the implementation's
//! [`Contract`](crate::implementation::Contract): an ingest
//! binary gets `--kafka-brokers` and a fresh `--topic`; a fan-out gets
//! `--kafka-brokers` and a fresh `--kafka-topic` only when the run asks for
//! Kafka ([`ServiceBuilder::with_kafka`]); a session cache gets only
//! `--listen` and the flags given.

use std::fmt::Display;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{self, Request, Response};
use crate::implementation::{Implementation, KafkaWiring};
use crate::kafka::{self, Record};

/// How long a binary may take from exec to logging `listening on` (or, for
/// [`ServiceBuilder::exit_at_startup`], to exiting).
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(30);
/// How long reading back a topic may take.
pub const KAFKA_READ_DEADLINE: Duration = Duration::from_secs(30);

/// Starts building a service run of `implementation`.
pub fn service(implementation: &Implementation) -> ServiceBuilder {
    ServiceBuilder {
        implementation: implementation.clone(),
        listen: None,
        with_kafka: false,
        topic: None,
        kafka: None,
        args: Vec::new(),
        env: Vec::new(),
    }
}

/// Flags for one run of a binary; [`ServiceBuilder::spawn`] starts it.
#[derive(Clone, Debug)]
pub struct ServiceBuilder {
    implementation: Implementation,
    listen: Option<String>,
    with_kafka: bool,
    topic: Option<String>,
    kafka: Option<String>,
    /// Command-line arguments after the suite's own.
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl ServiceBuilder {
    /// The `--listen` address instead of `127.0.0.1:0` (e.g. the port of
    /// another process, with `--reuse-port`).
    pub fn listen(mut self, addr: impl Display) -> Self {
        self.listen = Some(addr.to_string());
        self
    }

    /// Wires up the suite's Kafka for a contract where it is optional (the
    /// fan-out's Kafka path): `--kafka-brokers` and a fresh topic. Implied
    /// by [`topic`](Self::topic) and [`kafka`](Self::kafka).
    pub fn with_kafka(mut self) -> Self {
        self.with_kafka = true;
        self
    }

    /// The Kafka topic to use (a contract with Kafka only). Default: a fresh
    /// one named after the current test and implementation.
    pub fn topic(mut self, topic: &str) -> Self {
        self.topic = Some(topic.to_owned());
        self
    }

    /// Bootstrap brokers other than the suite's Kafka (a contract with
    /// Kafka only; e.g. an address where nothing listens). The suite then
    /// creates no topic.
    pub fn kafka(mut self, brokers: &str) -> Self {
        self.kafka = Some(brokers.to_owned());
        self
    }

    /// A command-line flag and its value, passed after the suite's own
    /// (`--listen`, and where Kafka is wired `--kafka-brokers` and the
    /// topic).
    pub fn flag(mut self, name: &str, value: impl Display) -> Self {
        self.args.push(name.to_owned());
        self.args.push(value.to_string());
        self
    }

    /// A command-line flag without a value (`--reuse-port`), passed like
    /// [`flag`](Self::flag).
    pub fn switch(mut self, name: &str) -> Self {
        self.args.push(name.to_owned());
        self
    }

    pub fn produce_timeout_ms(self, ms: u64) -> Self {
        self.flag("--produce-timeout-ms", ms)
    }

    pub fn shutdown_grace_ms(self, ms: u64) -> Self {
        self.flag("--shutdown-grace-ms", ms)
    }

    /// Also serve gRPC, on a port of the binary's choosing
    /// (`--grpc-listen 127.0.0.1:0`): [`Service::grpc_addr`].
    pub fn grpc(self) -> Self {
        self.flag("--grpc-listen", "127.0.0.1:0")
    }

    /// An environment variable for the process. The variables of the
    /// contract's prefix (`INGEST_*`, `CACHE_*`, `FANOUT_*`) in the suite's own
    /// environment are never passed on; these are.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts the binary, waits for its `listening on HOST:PORT` line and
    /// returns the running service. Stdout and stderr are forwarded to the
    /// test's stderr, each line prefixed with the implementation's name.
    ///
    /// # Panics
    /// When the binary cannot start, exits, or stays silent past
    /// [`STARTUP_DEADLINE`].
    pub fn spawn(self) -> Service {
        let name = self.implementation.name;
        let label = self.implementation.contract.label();
        let (mut child, lines, topic) = self.start();
        let deadline = Instant::now() + STARTUP_DEADLINE;
        let mut grpc_addr = None;
        let addr = loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(addr) = parse_listening(&line) {
                        break addr;
                    }
                    grpc_addr = grpc_addr.or_else(|| parse_after(&line, GRPC_MARKER));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "{name} {label} logged no `listening on HOST:PORT` within {STARTUP_DEADLINE:?}"
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                    panic!(
                        "{name} {label} closed its output ({status}) before logging `listening on HOST:PORT`"
                    )
                }
            }
        };
        Service {
            name,
            child,
            addr,
            grpc_addr,
            topic,
        }
    }

    /// Starts the binary expecting it to refuse its configuration: returns
    /// its exit status and everything it printed.
    ///
    /// # Panics
    /// When the binary logs `listening on` or is still running after
    /// [`STARTUP_DEADLINE`].
    pub fn exit_at_startup(self) -> (ExitStatus, String) {
        let name = self.implementation.name;
        let label = self.implementation.contract.label();
        let (mut child, lines, _) = self.start();
        let deadline = Instant::now() + STARTUP_DEADLINE;
        let mut output = String::new();
        loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if parse_listening(&line).is_some() => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{name} {label} started although its configuration is invalid: {line}")
                }
                Ok(line) => {
                    output.push_str(&line);
                    output.push('\n');
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{name} {label} still running {STARTUP_DEADLINE:?} after start")
                }
            }
        }
        (child.wait().expect("wait for child"), output)
    }

    /// Execs the binary with the suite's flags, then the arguments given;
    /// returns the child, a receiver of its output lines and its topic
    /// (where Kafka is wired).
    fn start(self) -> (Child, mpsc::Receiver<String>, Option<String>) {
        let name = self.implementation.name;
        let contract = self.implementation.contract;
        let mut command = Command::new(&self.implementation.binary);
        command.args(["--listen", self.listen.as_deref().unwrap_or("127.0.0.1:0")]);
        let asked = self.with_kafka || self.topic.is_some() || self.kafka.is_some();
        let topic_flag = match contract.kafka_wiring() {
            KafkaWiring::Always { topic_flag } => Some(topic_flag),
            KafkaWiring::OnRequest { topic_flag } if asked => Some(topic_flag),
            KafkaWiring::OnRequest { .. } => None,
            KafkaWiring::Never => {
                assert!(!asked, "a {} has no Kafka to configure", contract.label());
                None
            }
        };
        let topic = if let Some(topic_flag) = topic_flag {
            let topic = self.topic.unwrap_or_else(|| default_topic(name));
            let brokers = match self.kafka {
                Some(brokers) => brokers,
                None => {
                    kafka::create_topic(&topic);
                    kafka::brokers()
                }
            };
            command
                .args(["--kafka-brokers", &brokers])
                .args([topic_flag, &topic]);
            Some(topic)
        } else {
            None
        };
        command.args(&self.args);
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with(contract.env_prefix()) {
                command.env_remove(var);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "start {name} {} ({}): {e}",
                contract.label(),
                self.implementation.binary.display()
            )
        });

        let (lines_tx, lines_rx) = mpsc::channel();
        forward(
            name,
            child.stdout.take().expect("piped stdout"),
            lines_tx.clone(),
        );
        forward(name, child.stderr.take().expect("piped stderr"), lines_tx);
        (child, lines_rx, topic)
    }
}

/// Asserts `implementation` refuses every `(flag, value)` at start-up: it
/// exits non-zero with a message that names the flag.
#[track_caller]
pub fn assert_flags_refused(implementation: &Implementation, flags: &[(&str, &str)]) {
    for (flag, value) in flags {
        let (status, output) = service(implementation).flag(flag, value).exit_at_startup();
        assert!(!status.success(), "{flag} {value}: exit status {status}");
        let name = flag.trim_start_matches('-');
        assert!(
            output.contains(name),
            "{flag} {value}: the message does not name {name}:\n{output}"
        );
    }
}

/// A fresh topic named after the current test and implementation.
fn default_topic(name: &str) -> String {
    let test = thread::current().name().unwrap_or("test").to_owned();
    if test.starts_with(name) {
        kafka::unique_topic(&test)
    } else {
        kafka::unique_topic(&format!("{name}-{test}"))
    }
}

/// A running binary. Dropping it kills the process.
#[derive(Debug)]
pub struct Service {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    /// From a `serving gRPC on HOST:PORT` line before `listening on`.
    grpc_addr: Option<SocketAddr>,
    topic: Option<String>,
}

impl Service {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The bound address, as logged by the service.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The gRPC listener's address ([`ServiceBuilder::grpc`]).
    ///
    /// # Panics
    /// When the service logged no `serving gRPC on HOST:PORT` before
    /// `listening on`.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr.unwrap_or_else(|| {
            panic!(
                "the {} service logged no `{GRPC_MARKER} HOST:PORT` before `listening on`",
                self.name
            )
        })
    }

    /// `http://HOST:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Kafka topic the service uses.
    ///
    /// # Panics
    /// For a service without Kafka.
    pub fn topic(&self) -> &str {
        self.topic
            .as_deref()
            .unwrap_or_else(|| panic!("the {} service has no Kafka topic", self.name))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one request on a fresh connection.
    pub fn send(&self, request: &Request) -> Response {
        http::send(self.addr, request)
    }

    /// Sends one request on a fresh connection and reads until the service
    /// closes it: see [`http::send_then_drain`].
    pub fn send_then_drain(&self, request: &Request) -> (Response, Vec<u8>) {
        http::send_then_drain(self.addr, request)
    }

    /// Every record of the service's topic, read until `expected` arrived
    /// (or [`KAFKA_READ_DEADLINE`] passed).
    pub fn records(&self, expected: usize) -> Vec<Record> {
        kafka::read_topic(self.topic(), expected, KAFKA_READ_DEADLINE)
    }

    /// Every record of the service's topic right now: what Kafka has
    /// acknowledged, without waiting for more.
    pub fn records_now(&self) -> Vec<Record> {
        kafka::read_topic(self.topic(), 0, KAFKA_READ_DEADLINE)
    }

    /// Sends a signal (`"TERM"`, `"INT"`, …) to the process.
    pub fn signal(&self, signal: &str) {
        // `kill(1)` keeps the suite free of `unsafe` and of a signal crate.
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// The exit status, once the process exits within `timeout`.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for child") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Copies `from` line by line to this test's stderr, and sends each line
/// (ANSI colours stripped) through `lines` while someone listens.
fn forward(name: &'static str, from: impl Read + Send + 'static, lines: mpsc::Sender<String>) {
    // Threads spawned from a test inherit its output capture, so the lines
    // show up with the failing test that produced them.
    thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let text = strip_ansi(&String::from_utf8_lossy(&line));
            let text = text.trim_end();
            eprintln!("[{name}] {text}");
            // Nobody listens once the service is up; forwarding goes on.
            let _ = lines.send(text.to_owned());
        }
    });
}

/// The address in a log line containing `listening on HOST:PORT`, whatever
/// the log format around it (plain, logfmt, JSON).
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    parse_after(line, "listening on")
}

/// What a service with a gRPC listener logs before `listening on`.
const GRPC_MARKER: &str = "serving gRPC on";

/// The address after `marker` in a log line.
fn parse_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '{' | '}' | '='))
        .filter(|token| !token.is_empty())
        .take(4)
        .find_map(|token| token.parse().ok())
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_common_log_formats() {
        let expected: SocketAddr = "127.0.0.1:41234".parse().unwrap();
        for line in [
            "listening on 127.0.0.1:41234",
            "2025-01-01T00:00:00Z  INFO parallax_ingest: listening on 127.0.0.1:41234",
            r#"{"time":"…","level":"INFO","msg":"listening on 127.0.0.1:41234"}"#,
            r#"time=… level=INFO msg="listening on" addr=127.0.0.1:41234"#,
            "\u{1b}[2mINFO\u{1b}[0m listening on \u{1b}[3maddr\u{1b}[0m=127.0.0.1:41234",
        ] {
            assert_eq!(parse_listening(&strip_ansi(line)), Some(expected), "{line}");
        }
        assert_eq!(parse_listening("starting"), None);
    }
}
