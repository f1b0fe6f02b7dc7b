//! Starting a twin as a subprocess on `127.0.0.1:0` and talking to it.
//!
//! ```no_run
//! # use parallax_conformance::{service, Implementation, Request};
//! let ingest = service(&Implementation::go()).produce_timeout_ms(2000).spawn();
//! let response = ingest.send(&Request::get("/healthz"));
//! assert_eq!(response.status, 200);
//! ```

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{self, Request, Response};
use crate::implementation::Implementation;
use crate::kafka::{self, Record};

/// How long a binary may take from exec to logging `listening on`.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(30);
/// How long reading back a topic may take.
pub const KAFKA_READ_DEADLINE: Duration = Duration::from_secs(30);

/// Environment variables the binaries read; cleared so the suite's flags are
/// the whole configuration.
const INGEST_ENV: [&str; 6] = [
    "INGEST_LISTEN",
    "INGEST_KAFKA_BROKERS",
    "INGEST_TOPIC",
    "INGEST_PRODUCE_TIMEOUT_MS",
    "INGEST_LINGER_MS",
    "INGEST_SHUTDOWN_GRACE_MS",
];

/// Starts building a service run of `implementation`.
pub fn service(implementation: &Implementation) -> ServiceBuilder {
    ServiceBuilder {
        implementation: implementation.clone(),
        topic: None,
        kafka: None,
        produce_timeout_ms: None,
        shutdown_grace_ms: None,
        env: Vec::new(),
    }
}

/// Flags for one run of a binary; [`ServiceBuilder::spawn`] starts it.
#[derive(Clone, Debug)]
pub struct ServiceBuilder {
    implementation: Implementation,
    topic: Option<String>,
    kafka: Option<String>,
    produce_timeout_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
    env: Vec<(String, String)>,
}

impl ServiceBuilder {
    /// The topic to publish to. Default: a fresh one named after the
    /// current test and implementation.
    pub fn topic(mut self, topic: &str) -> Self {
        self.topic = Some(topic.to_owned());
        self
    }

    /// Bootstrap brokers other than the suite's Kafka (e.g. an address where
    /// nothing listens). The suite then creates no topic.
    pub fn kafka(mut self, brokers: &str) -> Self {
        self.kafka = Some(brokers.to_owned());
        self
    }

    pub fn produce_timeout_ms(mut self, ms: u64) -> Self {
        self.produce_timeout_ms = Some(ms);
        self
    }

    pub fn shutdown_grace_ms(mut self, ms: u64) -> Self {
        self.shutdown_grace_ms = Some(ms);
        self
    }

    /// An environment variable for the process. The `INGEST_*` variables of
    /// the suite's own environment are never passed on; these are.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts the binary, waits for its `listening on HOST:PORT` line and
    /// returns the running service. Stderr is forwarded to the test's stderr,
    /// each line prefixed with the implementation's name.
    ///
    /// # Panics
    /// When the binary cannot start, exits, or stays silent past
    /// [`STARTUP_DEADLINE`].
    pub fn spawn(self) -> Service {
        let name = self.implementation.name;
        let topic = self.topic.unwrap_or_else(|| {
            let test = thread::current().name().unwrap_or("test").to_owned();
            if test.starts_with(name) {
                kafka::unique_topic(&test)
            } else {
                kafka::unique_topic(&format!("{name}-{test}"))
            }
        });
        let brokers = match self.kafka {
            Some(brokers) => brokers,
            None => {
                let brokers = kafka::brokers();
                kafka::create_topic(&topic);
                brokers
            }
        };

        let mut command = Command::new(&self.implementation.binary);
        command
            .args(["--listen", "127.0.0.1:0"])
            .args(["--kafka-brokers", &brokers])
            .args(["--topic", &topic]);
        if let Some(ms) = self.produce_timeout_ms {
            command.args(["--produce-timeout-ms", &ms.to_string()]);
        }
        if let Some(ms) = self.shutdown_grace_ms {
            command.args(["--shutdown-grace-ms", &ms.to_string()]);
        }
        for var in INGEST_ENV {
            command.env_remove(var);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "start {name} ingest ({}): {e}",
                self.implementation.binary.display()
            )
        });

        forward(name, child.stdout.take().expect("piped stdout"), None);
        let (bound_tx, bound_rx) = mpsc::channel();
        forward(
            name,
            child.stderr.take().expect("piped stderr"),
            Some(bound_tx),
        );

        let addr = match bound_rx.recv_timeout(STARTUP_DEADLINE) {
            Ok(addr) => addr,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{name} ingest logged no `listening on HOST:PORT` within {STARTUP_DEADLINE:?}"
                )
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                panic!("{name} ingest closed stderr ({status}) before logging `listening on HOST:PORT`")
            }
        };
        Service {
            name,
            child,
            addr,
            topic,
        }
    }
}

/// A running binary. Dropping it kills the process.
#[derive(Debug)]
pub struct Service {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    topic: String,
}

impl Service {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The bound address, as logged by the service.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The topic the service publishes to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one request on a fresh connection.
    pub fn send(&self, request: &Request) -> Response {
        http::send(self.addr, request)
    }

    /// Every record of the service's topic, read until `expected` arrived
    /// (or [`KAFKA_READ_DEADLINE`] passed).
    pub fn records(&self, expected: usize) -> Vec<Record> {
        kafka::read_topic(&self.topic, expected, KAFKA_READ_DEADLINE)
    }

    /// Every record of the service's topic right now: what Kafka has
    /// acknowledged, without waiting for more.
    pub fn records_now(&self) -> Vec<Record> {
        kafka::read_topic(&self.topic, 0, KAFKA_READ_DEADLINE)
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

/// Copies `from` line by line to this test's stderr; when `bound` is given,
/// sends the address of the first `listening on` line through it.
fn forward(
    name: &'static str,
    from: impl Read + Send + 'static,
    bound: Option<mpsc::Sender<SocketAddr>>,
) {
    // Threads spawned from a test inherit its output capture, so the lines
    // show up with the failing test that produced them.
    thread::spawn(move || {
        let mut bound = bound;
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
            if let Some(addr) = parse_listening(text) {
                if let Some(tx) = bound.take() {
                    let _ = tx.send(addr);
                }
            }
        }
    });
}

/// The address in a log line containing `listening on HOST:PORT`, whatever
/// the log format around it (plain, logfmt, JSON).
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    const MARKER: &str = "listening on";
    let rest = &line[line.find(MARKER)? + MARKER.len()..];
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
