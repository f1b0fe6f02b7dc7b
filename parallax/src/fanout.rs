//! `parallax bench fanout`: idle memory per WebSocket connection and
//! broadcast latency of the notification fan-out twins, one twin at a time.
//!
//! A twin may hold at most 20,000 descriptors, and so may any process, so
//! the clients live in worker processes of this binary (`parallax bench
//! fanout-worker`, [`worker`]), the harness's worker fleet
//! ([`parallax_harness::fleet`]). Per twin:
//!
//! 1. start it with `--ping-interval-secs 3600` (idle clients are not
//!    reaped) and read its `VmRSS` as the baseline once ready;
//! 2. add workers until each checkpoint (10,000 and 19,000 connections by
//!    default), let it settle, and report (RSS − baseline) / connections;
//! 3. with every connection still open, `POST /v1/notify` to the topic the
//!    first `--latency-clients` connections subscribe to (the rest
//!    subscribe to an idle topic), setting `published_at_unix_us` to each
//!    notification's scheduled time (a late publisher counts as latency), at 1/s and then 100/s; the workers' histograms are merged.
//!
//! Output: the one results model (`parallax.results/v2`, direct mode),
//! `report.html` and `parallax run`'s table, one scenario per broadcast
//! rate (`bench-fanout-1ps`, `bench-fanout-100ps`): a backend's latency is
//! its delivery latency, its `requests` the frames delivered, its `errors`
//! the frames that never arrived, its CPU the twin's during the phase and
//! its peak RSS the twin's `VmHWM`. The idle memory per connection at each
//! checkpoint (and the RSS behind it) is a named extra figure of each
//! backend in both scenarios (`idle_bytes_per_connection_at_<N>`), so
//! `parallax gate` judges latency and two runs compare.
//!
//! Not a scenario on `parallax_harness::runner`: memory is read with every
//! connection held idle at checkpoints between adding workers, a shape the
//! runner (load at a rate, measured around) has no place for; see
//! `parallax_harness::rounds`, which folds its rounds into the results
//! model.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;

use parallax_harness::fleet::{Fleet, FleetSpec};
use parallax_harness::rounds::{self, Round};
use parallax_loadgen::result::Latency;
use parallax_loadgen::ws;
use parallax_report::{Better, ExtraMetric, Mode, Role, RunResults, ScenarioResult};

use crate::twin::{self, Twin};

const BUSY_TOPIC: &str = "bench";
const BUSY_PATH: &str = "/v1/subscribe?topics=bench";
const IDLE_PATH: &str = "/v1/subscribe?topics=idle";

#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// Connection counts at which idle memory is read, ascending.
    #[arg(long, value_delimiter = ',', default_value = "10000,19000")]
    pub checkpoints: Vec<usize>,
    /// Connections per worker process.
    #[arg(long, default_value_t = 5000)]
    pub per_worker: usize,
    /// Source addresses 127.0.0.2 … 127.0.0.(1+N), round-robin.
    #[arg(long, default_value_t = 4)]
    pub sources: u8,
    /// Seconds to wait after connecting before reading RSS.
    #[arg(long, default_value_t = 5)]
    pub settle_secs: u64,
    /// Connections (the first ones) subscribed to the broadcast topic.
    #[arg(long, default_value_t = 10_000)]
    pub latency_clients: usize,
    /// Notifications at 1/s.
    #[arg(long, default_value_t = 30)]
    pub slow_count: u64,
    /// Seconds at 100/s.
    #[arg(long, default_value_t = 20)]
    pub fast_secs: u64,
    /// Backends, in order.
    #[arg(long, value_delimiter = ',', default_value = "go,rust")]
    pub backends: Vec<String>,
    /// Where results.json and the twins' logs go.
    #[arg(long, default_value = "target/parallax-bench/fanout")]
    pub out: std::path::PathBuf,
}

/// One twin's figures.
#[derive(Debug, Serialize)]
struct TwinResult {
    backend: String,
    baseline_rss_bytes: u64,
    /// `VmHWM` at the end of the measurements.
    peak_rss_bytes: u64,
    memory: Vec<MemoryPoint>,
    broadcasts: Vec<Broadcast>,
    clean_exit: bool,
}

#[derive(Debug, Serialize)]
struct MemoryPoint {
    connections: usize,
    failed: usize,
    rss_bytes: u64,
    kib_per_connection: f64,
}

#[derive(Debug, Serialize)]
struct Broadcast {
    rate_per_sec: u64,
    notifications: u64,
    clients: usize,
    expected: u64,
    received: u64,
    /// Wall time the publisher took; above count / rate it fell behind.
    publish_secs: f64,
    /// The twin's CPU-seconds from the first notify to the report.
    server_cpu_seconds: f64,
    latency: Latency,
    /// The merged delivery latencies behind `latency`, µs.
    #[serde(skip)]
    histogram: Histogram<u64>,
}

pub fn run(root: &Path, args: &FanoutArgs) -> anyhow::Result<()> {
    let binaries = twin::build(root, "fanout")?;
    let out = root.join(&args.out);
    std::fs::create_dir_all(&out)?;
    let mut results = Vec::new();
    for backend in &args.backends {
        let binary = match backend.as_str() {
            "go" => &binaries.go,
            "rust" => &binaries.rust,
            other => bail!("unknown backend {other}"),
        };
        let name: &'static str = if backend == "go" { "go" } else { "rust" };
        eprintln!("fanout: {name} twin");
        let flags = ["--ping-interval-secs".to_owned(), "3600".to_owned()];
        let twin = Twin::spawn(name, binary, &flags, &out.join(format!("{name}.log")))?;
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        twin.wait_ready(&http, Duration::from_secs(30))?;
        let result = measure(&twin, &http, args).with_context(|| format!("{name} twin"))?;
        let clean_exit = twin.stop(Duration::from_secs(30))?.success();
        results.push(TwinResult {
            clean_exit,
            ..result
        });
    }
    write_results(&results, args, &out)
}

/// One scenario per broadcast rate, in the one results model.
fn write_results(results: &[TwinResult], args: &FanoutArgs, out: &Path) -> anyhow::Result<()> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut run = RunResults::new(command, Mode::Direct);
    let phases = results.first().map_or(0, |r| r.broadcasts.len());
    for phase in 0..phases {
        let rounds: Vec<Round> = results
            .iter()
            .filter_map(|r| Some((r, r.broadcasts.get(phase)?)))
            .map(|(r, b)| Round {
                backend: r.backend.clone(),
                language: r.backend.clone(),
                role: if r.backend == "go" {
                    Role::Baseline
                } else {
                    Role::Candidate
                },
                latency: b.histogram.clone(),
                measured_secs: b.publish_secs,
                errors: b.expected.saturating_sub(b.received),
                late: 0,
                cpu_seconds: Some(b.server_cpu_seconds),
                peak_rss_bytes: Some(r.peak_rss_bytes),
                extra: memory_figures(r),
            })
            .collect();
        let Some(first) = results[0].broadcasts.get(phase) else {
            continue;
        };
        run.scenarios.push(ScenarioResult {
            scenario: format!("bench-fanout-{}ps", first.rate_per_sec),
            unit: "deliveries".into(),
            target_rate_per_sec: (first.rate_per_sec * first.clients as u64) as f64,
            duration_secs: first.notifications as f64 / first.rate_per_sec.max(1) as f64,
            warmup_secs: 0.0,
            backends: rounds::fold(
                &rounds,
                "/proc: the twin's CPU time over the phase and its VmHWM",
            ),
            comparison: None,
            notes: vec![
                format!(
                    "{} notifications at {}/s to {} subscribed connections of {}; latency is receive time minus the scheduled publish time",
                    first.notifications,
                    first.rate_per_sec,
                    first.clients,
                    args.checkpoints.last().copied().unwrap_or(0)
                ),
                "each twin alone in turn (go, then rust), one process each, every connection held for the whole run".into(),
                format!(
                    "load average at the end: {}",
                    crate::procstat::load_average()
                ),
            ],
            routes: Vec::new(),
            budgets: None,
            capacity: None,
            noise: None,
        });
    }
    for r in results.iter().filter(|r| !r.clean_exit) {
        let note = format!("the {} twin did not exit cleanly after SIGTERM", r.backend);
        eprintln!("warning: {note}");
        for s in &mut run.scenarios {
            s.notes.push(note.clone());
        }
    }
    crate::experiment::write(&run, out)
}

/// The idle-memory checkpoints as named figures.
fn memory_figures(r: &TwinResult) -> Vec<ExtraMetric> {
    let mut figures = vec![ExtraMetric::new(
        "baseline_rss_bytes",
        r.baseline_rss_bytes as f64,
        "bytes",
        Some(Better::Lower),
        "the twin's RSS once ready, before any connection",
    )];
    for m in &r.memory {
        let at = m.connections;
        figures.push(ExtraMetric::new(
            format!("idle_bytes_per_connection_at_{at}"),
            m.kib_per_connection * 1024.0,
            "bytes",
            Some(Better::Lower),
            format!("(RSS - baseline) / connections with {at} idle WebSocket connections open ({} failed)", m.failed),
        ));
        figures.push(ExtraMetric::new(
            format!("rss_at_{at}_connections_bytes"),
            m.rss_bytes as f64,
            "bytes",
            Some(Better::Lower),
            format!("the twin's RSS with {at} idle connections open"),
        ));
    }
    figures
}

fn measure(
    twin: &Twin,
    http: &reqwest::blocking::Client,
    args: &FanoutArgs,
) -> anyhow::Result<TwinResult> {
    std::thread::sleep(Duration::from_secs(1));
    let baseline = twin.usage()?.rss_bytes;
    let mut spec = FleetSpec::new(crate::workspace::self_exe()?, twin.addr);
    spec.per_worker = args.per_worker;
    spec.sources = args.sources;
    let mut fleet = Fleet::new(spec);
    let mut memory = Vec::new();
    let mut total = 0;
    for &checkpoint in &args.checkpoints {
        while total < checkpoint {
            let (path, n) = next_worker(total, checkpoint, args.per_worker, args.latency_clients);
            fleet.add(path, n)?;
            total += n;
        }
        std::thread::sleep(Duration::from_secs(args.settle_secs));
        let (connected, failed) = (fleet.connected(), fleet.failed());
        if let Some(e) = fleet.first_error() {
            eprintln!("  {failed} connections failed; first: {e}");
        }
        let rss = twin.usage()?.rss_bytes;
        let point = MemoryPoint {
            connections: connected,
            failed,
            rss_bytes: rss,
            kib_per_connection: kib_per_connection(baseline, rss, connected),
        };
        eprintln!(
            "  {connected} connected: RSS {} MiB, {:.2} KiB/connection",
            rss >> 20,
            point.kib_per_connection
        );
        memory.push(point);
    }
    let clients = fleet.connected_on(BUSY_PATH);
    let mut broadcasts = Vec::new();
    for (rate, count) in [(1, args.slow_count), (100, 100 * args.fast_secs)] {
        fleet.reset()?;
        eprintln!("  {count} notifications at {rate}/s to {clients} clients");
        let (cpu, started) = (twin.usage()?.cpu_seconds, Instant::now());
        publish(http, twin, rate, count)?;
        let publish_secs = started.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_secs(3));
        let server_cpu_seconds = twin.usage()?.cpu_seconds - cpu;
        let merged = fleet.latency()?;
        broadcasts.push(Broadcast {
            publish_secs,
            server_cpu_seconds,
            ..summarise(rate, count, clients, &merged)
        });
    }
    drop(fleet);
    Ok(TwinResult {
        backend: twin.name.to_owned(),
        baseline_rss_bytes: baseline,
        peak_rss_bytes: twin.usage()?.peak_rss_bytes,
        memory,
        broadcasts,
        clean_exit: false,
    })
}

/// The path (topic) and size of the next worker: workers never straddle
/// the `latency_clients` boundary, so exactly that many connections are
/// busy.
fn next_worker(
    total: usize,
    checkpoint: usize,
    per_worker: usize,
    latency_clients: usize,
) -> (&'static str, usize) {
    let n = per_worker.min(checkpoint - total);
    if total < latency_clients {
        (BUSY_PATH, n.min(latency_clients - total))
    } else {
        (IDLE_PATH, n)
    }
}

fn kib_per_connection(baseline: u64, rss: u64, connections: usize) -> f64 {
    rss.saturating_sub(baseline) as f64 / 1024.0 / connections.max(1) as f64
}

fn summarise(rate: u64, count: u64, clients: usize, h: &Histogram<u64>) -> Broadcast {
    Broadcast {
        rate_per_sec: rate,
        notifications: count,
        clients,
        expected: count * clients as u64,
        received: h.len(),
        publish_secs: 0.0,
        server_cpu_seconds: 0.0,
        latency: Latency::from_histogram(h),
        histogram: h.clone(),
    }
}

/// `count` notifications at `rate`/s on an absolute schedule.
fn publish(
    http: &reqwest::blocking::Client,
    twin: &Twin,
    rate: u64,
    count: u64,
) -> anyhow::Result<()> {
    let url = twin.url("/v1/notify");
    let (start, start_us) = (Instant::now(), ws::now_unix_us());
    for seq in 0..count {
        let offset = Duration::from_secs_f64(seq as f64 / rate as f64);
        if let Some(wait) = (start + offset).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        // Stamped with the slot's due time, not the send time: a publisher
        // that falls behind then shows up in the latency instead of hiding.
        let due_us = start_us + offset.as_micros() as u64;
        let body = format!(
            r#"{{"topic":"{BUSY_TOPIC}","published_at_unix_us":{due_us},"body":{{"seq":{seq}}}}}"#
        );
        let status = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()?
            .status();
        if status.as_u16() != 202 {
            bail!("POST /v1/notify answered {status}");
        }
    }
    Ok(())
}

/// `parallax bench fanout-worker` (hidden): one worker of the harness's
/// fleet ([`parallax_harness::fleet`]), started by the fleet itself.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[arg(long)]
    server: SocketAddr,
    /// Path and query of the upgrade request.
    #[arg(long)]
    path: String,
    /// `name: value`, repeated.
    #[arg(long = "header")]
    headers: Vec<String>,
    /// A text message sent after the handshake, repeated.
    #[arg(long = "message", allow_hyphen_values = true)]
    messages: Vec<String>,
    #[arg(long)]
    connections: usize,
    #[arg(long, default_value_t = 0)]
    first_index: usize,
    #[arg(long, default_value_t = 4)]
    sources: u8,
    /// New connections per second (default: as fast as possible).
    #[arg(long)]
    connect_rate: Option<f64>,
}

/// Runs one worker until told to exit.
pub fn worker(args: &WorkerArgs) -> anyhow::Result<()> {
    parallax_harness::fleet::worker_main(&parallax_harness::fleet::WorkerArgs {
        server: args.server,
        path: args.path.clone(),
        headers: args.headers.clone(),
        messages: args.messages.clone(),
        connections: args.connections,
        first_index: args.first_index,
        sources: args.sources,
        connect_rate: args.connect_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_per_connection_is_the_rss_delta_over_connections() {
        assert_eq!(kib_per_connection(1 << 20, (1 << 20) + 10 * 8192, 10), 8.0);
        assert_eq!(kib_per_connection(2048, 1024, 10), 0.0);
        assert_eq!(kib_per_connection(0, 1024, 0), 1.0);
    }

    #[test]
    fn exactly_latency_clients_connections_are_busy() {
        let mut plan = Vec::new();
        let mut total = 0;
        while total < 10_000 {
            let (topic, n) = next_worker(total, 10_000, 5_000, 1_000);
            plan.push((topic, n));
            total += n;
        }
        assert_eq!(
            plan,
            vec![(BUSY_PATH, 1_000), (IDLE_PATH, 5_000), (IDLE_PATH, 4_000)]
        );
    }
}
