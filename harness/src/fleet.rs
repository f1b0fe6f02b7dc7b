//! The worker-process fleet: many WebSocket sessions held open in worker
//! processes, each timing the frames its sessions receive.
//!
//! Why processes: one process may hold at most 20,000 descriptors here (a
//! hard limit), and a fan-out service is judged with tens of thousands of
//! clients. So the sessions live in workers — the `parallax` binary's hidden
//! `bench fanout-worker` subcommand, which calls [`worker_main`] — each with
//! its share of the connections ([`parallax_loadgen::ws`]), bound round-robin
//! to source addresses 127.0.0.2… (one source address reaches one
//! destination from only ~28K ephemeral ports).
//!
//! The protocol is line-based on the worker's stdin and stdout, so nothing
//! but pipes is shared: the worker prints one [`Hello`] line once its
//! connections are open, then answers each command line (`reset`, `report`,
//! `exit`) with one [`Report`] line. Latency is receive time minus the
//! frame's `published_at_unix_us` (set by whoever published it), merged over
//! the workers as serialised HDR histograms.
//!
//! Used by `parallax run` for `[traffic.websocket]` sessions
//! ([`crate::wsrun`]), `parallax load ws` and `parallax bench fanout`.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use parallax_loadgen::ws::{self, SubscribeConfig};
use serde::{Deserialize, Serialize};

/// What every worker of a fleet shares.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// The `parallax` binary (its `bench fanout-worker` runs one worker).
    pub exe: PathBuf,
    /// Where the sessions connect.
    pub server: SocketAddr,
    /// Headers of every upgrade request.
    pub headers: Vec<(String, String)>,
    /// Text messages each session sends after its handshake.
    pub messages: Vec<String>,
    /// The most sessions one worker holds.
    pub per_worker: usize,
    /// Source addresses 127.0.0.2 … 127.0.0.(1+N), round-robin.
    pub sources: u8,
    /// New connections per second per worker (`None`: as fast as possible).
    pub connect_rate: Option<f64>,
}

impl FleetSpec {
    /// Defaults: 10,000 sessions a worker, 4 source addresses, no headers or
    /// messages, connecting as fast as possible.
    pub fn new(exe: PathBuf, server: SocketAddr) -> Self {
        Self {
            exe,
            server,
            headers: Vec::new(),
            messages: Vec::new(),
            per_worker: 10_000,
            sources: 4,
            connect_rate: None,
        }
    }
}

/// Sessions spread over worker processes; every worker is killed when the
/// fleet is dropped.
pub struct Fleet {
    spec: FleetSpec,
    workers: Vec<Worker>,
    /// Sessions asked for so far (the next worker's first global index).
    total: usize,
}

impl Fleet {
    /// No sessions yet; [`Fleet::add`] opens them.
    pub fn new(spec: FleetSpec) -> Self {
        Self {
            spec,
            workers: Vec::new(),
            total: 0,
        }
    }

    /// Opens `clients` sessions on `path`, in workers of at most
    /// `per_worker` each (workers connect one after another).
    pub fn connect(spec: FleetSpec, path: &str, clients: usize) -> anyhow::Result<Self> {
        let mut fleet = Self::new(spec);
        fleet.add(path, clients)?;
        Ok(fleet)
    }

    /// Opens `n` more sessions on `path` (several workers if `n` is larger
    /// than `per_worker`); returns once they are open or failed.
    pub fn add(&mut self, path: &str, n: usize) -> anyhow::Result<()> {
        let mut left = n;
        while left > 0 {
            let k = self.spec.per_worker.max(1).min(left);
            let started = Worker::start(&self.spec, path, k, self.total)?;
            self.workers.push(started.greet()?);
            self.total += k;
            left -= k;
        }
        Ok(())
    }

    /// One fleet per `(spec, path, clients)`, their workers all started
    /// before any is waited for, so every fleet's sessions open at the same
    /// time. An A/B comparison wants this: fleets opened one after another
    /// leave the first backend's sessions older, its heap grown earlier and
    /// its connect work done while the second still idled — a difference of
    /// position that a fair comparison must not carry.
    pub fn connect_together(fleets: Vec<(FleetSpec, String, usize)>) -> anyhow::Result<Vec<Self>> {
        let mut started = Vec::new();
        for (spec, path, clients) in fleets {
            let mut pending = Vec::new();
            let (mut left, mut total) = (clients, 0);
            while left > 0 {
                let k = spec.per_worker.max(1).min(left);
                pending.push(Worker::start(&spec, &path, k, total)?);
                total += k;
                left -= k;
            }
            started.push((spec, total, pending));
        }
        started
            .into_iter()
            .map(|(spec, total, pending)| {
                let workers = pending
                    .into_iter()
                    .map(Worker::greet)
                    .collect::<anyhow::Result<_>>()?;
                Ok(Self {
                    spec,
                    workers,
                    total,
                })
            })
            .collect()
    }

    /// Sessions open.
    pub fn connected(&self) -> usize {
        self.workers.iter().map(|w| w.hello.connected).sum()
    }

    /// Sessions that failed to open.
    pub fn failed(&self) -> usize {
        self.workers.iter().map(|w| w.hello.failed).sum()
    }

    /// Sessions open on `path`.
    pub fn connected_on(&self, path: &str) -> usize {
        self.workers
            .iter()
            .filter(|w| w.path == path)
            .map(|w| w.hello.connected)
            .sum()
    }

    /// The first connect error any worker saw.
    pub fn first_error(&self) -> Option<String> {
        self.workers
            .iter()
            .find_map(|w| w.hello.first_error.clone())
    }

    /// Forgets everything received so far.
    pub fn reset(&mut self) -> anyhow::Result<()> {
        for w in &mut self.workers {
            w.command("reset")?;
        }
        Ok(())
    }

    /// Delivery latency (µs) of every timed frame received since the last
    /// reset, merged over the workers.
    pub fn latency(&mut self) -> anyhow::Result<Histogram<u64>> {
        let mut merged = ws::new_histogram();
        for w in &mut self.workers {
            let report = w.command("report")?;
            merged.add(ws::decode_histogram(&report.histogram).map_err(anyhow::Error::msg)?)?;
        }
        Ok(merged)
    }

    /// Polls [`Fleet::latency`] once a second until `expected` frames
    /// arrived or `patience` ran out; what arrived by then.
    pub fn await_frames(
        &mut self,
        expected: u64,
        patience: Duration,
    ) -> anyhow::Result<Histogram<u64>> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let latency = self.latency()?;
            if latency.len() >= expected || std::time::Instant::now() >= deadline {
                return Ok(latency);
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.command("exit");
        }
    }
}

/// A worker's first line: how its connections went.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Hello {
    pub connected: usize,
    pub failed: usize,
    pub first_error: Option<String>,
}

/// A worker's answer to `reset`, `report` or `exit`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// Hex of the V2-serialised latency histogram (µs).
    pub histogram: String,
    /// Text frames without a readable `published_at_unix_us`.
    pub unparsed: u64,
}

struct Worker {
    path: String,
    hello: Hello,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn start(
        spec: &FleetSpec,
        path: &str,
        connections: usize,
        first_index: usize,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(&spec.exe);
        command.args(["bench", "fanout-worker"]);
        for arg in worker_args(spec, path, connections, first_index) {
            command.arg(arg);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start a WebSocket worker ({} bench fanout-worker)",
                    spec.exe.display()
                )
            })?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        Ok(Self {
            path: path.to_owned(),
            hello: Hello::default(),
            child,
            stdin,
            stdout,
        })
    }

    /// Waits for the worker's connections: its [`Hello`] line. A worker
    /// from [`Worker::start`] is not counted until greeted.
    fn greet(mut self) -> anyhow::Result<Self> {
        self.hello = serde_json::from_str(&read_line(&mut self.stdout)?)?;
        Ok(self)
    }

    fn command(&mut self, command: &str) -> anyhow::Result<Report> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        Ok(serde_json::from_str(&read_line(&mut self.stdout)?)?)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The worker's command line (what `bench fanout-worker` parses into
/// [`WorkerArgs`]).
fn worker_args(
    spec: &FleetSpec,
    path: &str,
    connections: usize,
    first_index: usize,
) -> Vec<String> {
    let mut args = vec![
        "--server".to_owned(),
        spec.server.to_string(),
        "--path".to_owned(),
        path.to_owned(),
        "--connections".to_owned(),
        connections.to_string(),
        "--first-index".to_owned(),
        first_index.to_string(),
        "--sources".to_owned(),
        spec.sources.to_string(),
    ];
    if let Some(rate) = spec.connect_rate {
        args.extend(["--connect-rate".to_owned(), rate.to_string()]);
    }
    for (name, value) in &spec.headers {
        args.extend(["--header".to_owned(), format!("{name}: {value}")]);
    }
    for m in &spec.messages {
        args.extend(["--message".to_owned(), m.clone()]);
    }
    args
}

fn read_line(r: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        bail!("a WebSocket worker exited early");
    }
    Ok(line)
}

/// One worker's share, as its command line gives it.
#[derive(Debug, Clone)]
pub struct WorkerArgs {
    pub server: SocketAddr,
    pub path: String,
    /// `name: value` each.
    pub headers: Vec<String>,
    pub messages: Vec<String>,
    pub connections: usize,
    pub first_index: usize,
    pub sources: u8,
    pub connect_rate: Option<f64>,
}

/// A worker process's body: connects, prints [`Hello`], then answers
/// `reset` / `report` / `exit` lines on stdin with a [`Report`] line.
pub fn worker_main(args: &WorkerArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let headers = args
        .headers
        .iter()
        .map(|h| {
            let (name, value) = h
                .split_once(':')
                .with_context(|| format!("--header {h:?}: give `name: value`"))?;
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = SubscribeConfig {
        server: args.server,
        path: args.path.clone(),
        headers,
        messages: args.messages.clone(),
        connections: args.connections,
        sources: (0..args.sources.max(1))
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i)))
            .collect(),
        first_index: args.first_index,
        concurrency: 256,
        connect_rate_per_sec: args.connect_rate,
    };
    let subscribers = runtime.block_on(ws::connect(&config));
    let mut stdout = std::io::stdout().lock();
    let hello = Hello {
        connected: subscribers.connected,
        failed: subscribers.failed,
        first_error: subscribers.first_error.clone(),
    };
    writeln!(stdout, "{}", serde_json::to_string(&hello)?)?;
    stdout.flush()?;
    // The readers run on the runtime while this thread waits for commands.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    runtime.block_on(async {
        while let Some(line) = rx.recv().await {
            let mut report = Report::default();
            {
                let mut r = subscribers.recorder.lock().expect("not poisoned");
                match line.trim() {
                    "reset" => *r = ws::Recorder::default(),
                    "report" => {
                        report.histogram = ws::encode_histogram(&r.latency_us);
                        report.unparsed = r.unparsed;
                    }
                    _ => {}
                }
            }
            writeln!(stdout, "{}", serde_json::to_string(&report)?)?;
            stdout.flush()?;
            if line.trim() == "exit" {
                break;
            }
        }
        anyhow::Ok(())
    })?;
    drop(subscribers);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_command_line_carries_the_whole_session() {
        let mut spec = FleetSpec::new("parallax".into(), "127.0.0.1:9".parse().unwrap());
        spec.headers = vec![("authorization".into(), "Bearer t".into())];
        spec.messages = vec![r#"{"op":"subscribe"}"#.into()];
        spec.connect_rate = Some(50.0);
        let args = worker_args(&spec, "/ws?x=1", 7, 3);
        let after = |flag: &str| {
            let i = args.iter().position(|a| a == flag).unwrap();
            args[i + 1].as_str()
        };
        assert_eq!(after("--server"), "127.0.0.1:9");
        assert_eq!(after("--path"), "/ws?x=1");
        assert_eq!(after("--connections"), "7");
        assert_eq!(after("--first-index"), "3");
        assert_eq!(after("--connect-rate"), "50");
        assert_eq!(after("--header"), "authorization: Bearer t");
        assert_eq!(after("--message"), r#"{"op":"subscribe"}"#);
    }
}
