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
//!
//! The process is `parallax_process`'s one child-process type, as the
//! harness starts its backends: its output is logged to a file (kept when
//! the test fails, removed otherwise) and echoed to the test's stderr; it
//! shares the test's process group, so stopping `cargo test` stops it.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use parallax_process::child::{ChildError, ChildProcess, ChildSpec, Readiness};

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
        let (spec, topic) = self.start();
        let child = ChildProcess::spawn(&spec).unwrap_or_else(|e| panic!("{e}"));
        let addr = child.addr.expect("ready by its listening line");
        // Logged before `listening on`, so already in the log.
        let grpc_addr = child.logged_addr(GRPC_MARKER);
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
        let (spec, _) = self.start();
        let who = spec.name.clone();
        match ChildProcess::spawn(&spec) {
            Err(ChildError::Exited { status, log, .. }) => {
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                let _ = std::fs::remove_file(&log);
                (status, output)
            }
            Ok(child) => panic!(
                "{who} started although its configuration is invalid: listening on {:?}",
                child.addr
            ),
            Err(ChildError::NotReady { .. }) => {
                panic!("{who} still running {STARTUP_DEADLINE:?} after start")
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// What to start: the binary with the suite's flags, then the arguments
    /// given, ready when it logs `listening on HOST:PORT`; and its topic
    /// (where Kafka is wired).
    fn start(self) -> (ChildSpec, Option<String>) {
        let name = self.implementation.name;
        let contract = self.implementation.contract;
        let mut spec = ChildSpec::new(
            format!("{name} {}", contract.label()),
            &self.implementation.binary,
            log_path(name),
        );
        let args = &mut spec.args;
        args.push("--listen".into());
        args.push(self.listen.unwrap_or_else(|| "127.0.0.1:0".into()));
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
            args.extend(["--kafka-brokers".to_owned(), brokers]);
            args.extend([topic_flag.to_owned(), topic.clone()]);
            Some(topic)
        } else {
            None
        };
        args.extend(self.args);
        // The contract's variables in the suite's own environment are
        // never passed on; those given with `env` are.
        spec.env_remove = std::env::vars_os()
            .map(|(var, _)| var.to_string_lossy().into_owned())
            .filter(|var| var.starts_with(contract.env_prefix()))
            .collect();
        spec.env = self.env;
        spec.echo = Some(name.to_owned());
        spec.own_group = false;
        spec.ready = Readiness::ListeningLine;
        spec.ready_timeout = STARTUP_DEADLINE;
        (spec, topic)
    }
}

/// A fresh log file for one run of `name`, in a directory of this test
/// process's under the system's temporary directory.
fn log_path(name: &str) -> PathBuf {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("parallax-conformance-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{name}-{run}.log"))
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

/// A running binary. Dropping it kills the process (and removes its log,
/// unless the test is failing).
#[derive(Debug)]
pub struct Service {
    name: &'static str,
    child: ChildProcess,
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
        self.child.pid()
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
        if let Err(e) = self.child.signal(signal) {
            panic!("kill -{signal} {}: {e}", self.pid());
        }
    }

    /// The exit status, once the process exits within `timeout`.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.child.wait_timeout(timeout)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // The child itself is killed by its own drop; a failing test keeps
        // the log to read.
        if !thread::panicking() {
            let _ = std::fs::remove_file(self.child.log());
        }
    }
}

/// The address in a log line containing `listening on HOST:PORT`, whatever
/// the log format around it (plain, logfmt, JSON).
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    parallax_process::child::listening_addr(line)
}

/// What a service with a gRPC listener logs before `listening on`.
const GRPC_MARKER: &str = "serving gRPC on";
