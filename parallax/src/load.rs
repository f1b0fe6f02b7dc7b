//! `parallax load ingest|cache|ws`: open-model load against one target
//! (a twin, the proxy, anything speaking the contract), on goose.
//!
//! Each HTTP run is a warm-up (sent, not measured, with slot numbers of its
//! own so no event id repeats) followed by the measured phase; latency is
//! measured from each request's intended start ([`parallax_loadgen::open`]).
//! The command prints a progress line a second, then a summary, writes a
//! JSON report (`load.json`, schema `parallax.load/v1`, documented on
//! [`LoadReport`]) and goose's HTML report, and exits non-zero when a
//! request failed or the target rate was not held.
//!
//! `ws` holds WebSocket subscribers in worker processes (see
//! [`crate::fanout::Fleet`]) and publishes notifications at the given rate
//! through the same open model; delivery latency is receive time minus the
//! `published_at_unix_us` the publisher stamped when it sent.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, Subcommand};
use goose::prelude::GooseMethod;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use parallax_loadgen::cache::{CacheConfig, CacheWorkload};
use parallax_loadgen::ingest::{IngestConfig, IngestWorkload};
use parallax_loadgen::open::{
    self, Offset, OpenConfig, OpenReport, Request, Verdict, Worker, Workload,
};
use parallax_loadgen::pacing::Schedule;
use parallax_report::{
    histogram, BackendResult, LatencySummary, Machine, Mode, Role, RunResults, ScenarioResult,
    Window,
};

/// Warm-up slots are numbered from here, far from the measured ones.
const WARMUP_FIRST_SLOT: u64 = 1 << 40;

#[derive(Debug, Subcommand)]
pub enum Load {
    /// Protobuf event batches to POST /v1/events.
    Ingest(IngestArgs),
    /// Session-cache reads and writes (Zipf keys).
    Cache(CacheArgs),
    /// WebSocket subscribers plus notifications published at a rate.
    Ws(WsArgs),
    /// Any HTTP service: the `[traffic]` request templates of an experiment
    /// file (docs/experiments.md) against one target.
    Http(HttpArgs),
    /// Unary gRPC calls over HTTP/2 (h2c or TLS): a method, its request as
    /// proto3 JSON (placeholders allowed) and a descriptor set, or the
    /// `[traffic.grpc]` of an experiment file; counted per grpc-status.
    Grpc(GrpcArgs),
    /// Join the load.json files of the workers of one run (`--worker I/N`)
    /// into one: counts summed, HDR histograms merged exactly, the whole
    /// run's rate judged (exit 1 when it was not held).
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The workers' load.json files.
    #[arg(required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Largest share of measured slots that may start late (>10 ms).
    #[arg(long, default_value_t = 0.01)]
    pub max_late_ratio: f64,
    /// Where the merged report goes.
    #[arg(long, default_value = "target/parallax-load/merged.json")]
    pub out: PathBuf,
}

/// The workers' reports as one: what a single process sending the whole
/// schedule would have reported, latency percentiles included (merged
/// histograms, not averaged percentiles).
pub fn merge(reports: &[LoadReport], max_late_ratio: f64) -> anyhow::Result<LoadReport> {
    let first = reports.first().context("no report to merge")?;
    let mut histogram: Option<Histogram<u64>> = None;
    for (i, r) in reports.iter().enumerate() {
        if r.scenario != first.scenario || r.target != first.target {
            bail!(
                "report {i} is of {} against {}, the first of {} against {}: not one run",
                r.scenario,
                r.target,
                first.scenario,
                first.target
            );
        }
        let h = histogram::decode(&r.histogram)
            .with_context(|| format!("report {i}: its histogram does not decode"))?;
        match &mut histogram {
            Some(all) => all.add(&h).context("histograms of different bounds")?,
            None => histogram = Some(h),
        }
    }
    let histogram = histogram.expect("at least one report");
    let sum = |f: fn(&LoadReport) -> u64| reports.iter().map(f).sum::<u64>();
    let sumf = |f: fn(&LoadReport) -> f64| reports.iter().map(f).sum::<f64>();
    let requests = sum(|r| r.requests);
    let late = sum(|r| r.late);
    let not_sent = sum(|r| r.not_sent);
    let target = sumf(|r| r.target_rate_per_sec);
    let achieved = sumf(|r| r.achieved_rate_per_sec);
    let held = not_sent == 0
        && (late as f64 / requests.max(1) as f64) <= max_late_ratio
        && achieved >= 0.95 * target;
    Ok(LoadReport {
        schema: first.schema.clone(),
        created_at: first.created_at.clone(),
        command: format!("parallax load merge ({} workers)", reports.len()),
        machine: first.machine.clone(),
        scenario: first.scenario.clone(),
        target: first.target.clone(),
        target_rate_per_sec: target,
        achieved_rate_per_sec: achieved,
        achieved_units_per_sec: sumf(|r| r.achieved_units_per_sec),
        requests,
        units: sum(|r| r.units),
        errors: sum(|r| r.errors),
        late,
        not_sent,
        held,
        latency: LatencySummary::from_histogram(&histogram),
        histogram: histogram::encode(&histogram),
        // Per-second windows hold percentiles, which do not add up.
        timeline: Vec::new(),
        error_samples: reports
            .iter()
            .flat_map(|r| r.error_samples.iter().cloned())
            .take(10)
            .collect(),
        generator_cpu_seconds: sumf(|r| r.generator_cpu_seconds),
        grpc_status: reports.iter().fold(Default::default(), |mut all, r| {
            for (code, n) in &r.grpc_status {
                *all.entry(code.clone()).or_default() += n;
            }
            all
        }),
    })
}

pub fn merge_files(args: &MergeArgs) -> anyhow::Result<()> {
    let reports = args
        .files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str::<LoadReport>(&text)
                .with_context(|| format!("{} is not a parallax load.json", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let merged = merge(&reports, args.max_late_ratio)?;
    print_summary(&merged);
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&merged)?)?;
    eprintln!("merged report: {}", args.out.display());
    let dir = args.out.parent().filter(|d| !d.as_os_str().is_empty());
    write_results(&merged, dir.unwrap_or(Path::new(".")))?;
    if !merged.held {
        bail!(
            "the run's rate was not held: {:.1}/s of {:.1}/s, {} late, {} not sent",
            merged.achieved_rate_per_sec,
            merged.target_rate_per_sec,
            merged.late,
            merged.not_sent
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct HttpArgs {
    #[command(flatten)]
    pub common: Common,
    /// The file whose `[traffic]` (and `[[routes]]`, `[load]`) to use; its
    /// backends are ignored. Without it, one request template from
    /// `--path` (and `--method`, `--header`, `--body`, `--value`).
    #[arg(long, value_name = "EXPERIMENT.toml", conflicts_with = "path")]
    pub experiment: Option<PathBuf>,
    /// Path and query of the one template, `{{name}}` placeholders allowed.
    #[arg(long, required_unless_present = "experiment")]
    pub path: Option<String>,
    /// Its method.
    #[arg(long, default_value = "GET", requires = "path")]
    pub method: String,
    /// A header, `name: value` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE", requires = "path")]
    pub headers: Vec<String>,
    /// Its body.
    #[arg(long, requires = "path")]
    pub body: Option<String>,
    /// A value generator, `name={ kind = "int", min = 1, max = 100 }` as in
    /// an experiment's `[traffic.values]` (repeatable).
    #[arg(long = "value", value_name = "NAME=SPEC", requires = "path")]
    pub values: Vec<String>,
    /// Requests per second. Default: the file's `load.rate`, else 100.
    #[arg(long)]
    pub rate: Option<f64>,
}

#[derive(Debug, Args)]
pub struct GrpcArgs {
    /// `http://host:port` (h2c, prior knowledge) or `https://host:port`
    /// (TLS, ALPN h2) of the server or the proxy in front of it.
    #[arg(long)]
    pub target: String,
    /// The file whose `[traffic.grpc]` (and `[load]`) to use; its backends
    /// are ignored. Without it, one call from `--method` and `--json`.
    #[arg(long, value_name = "EXPERIMENT.toml", conflicts_with = "method")]
    pub experiment: Option<PathBuf>,
    /// `package.Service/Method`, e.g. parallax.ingest.v1.IngestService/Publish.
    #[arg(long, required_unless_present = "experiment")]
    pub method: Option<String>,
    /// A binary FileDescriptorSet defining the method (`protoc
    /// --include_imports --descriptor_set_out=FILE`, `buf build -o FILE`).
    /// Default: this project's own .proto files.
    #[arg(long, value_name = "FILE", requires = "method")]
    pub descriptor_set: Option<PathBuf>,
    /// The request message as proto3 JSON, `{{name}}` placeholders allowed
    /// (see --value); `@FILE` reads it from a file.
    #[arg(
        long,
        value_name = "TEMPLATE",
        requires = "method",
        conflicts_with = "message_bytes_file"
    )]
    pub json: Option<String>,
    /// An already encoded request message (binary protobuf), sent as is.
    #[arg(long, value_name = "FILE", requires = "method")]
    pub message_bytes_file: Option<PathBuf>,
    /// Request metadata, `name: value` (repeatable).
    #[arg(long = "metadata", value_name = "NAME: VALUE", requires = "method")]
    pub metadata: Vec<String>,
    /// A value generator, `name={ kind = "sequence" }` as in an experiment's
    /// `[traffic.values]` (repeatable).
    #[arg(long = "value", value_name = "NAME=SPEC", requires = "method")]
    pub values: Vec<String>,
    /// grpc-status codes that count as success (repeatable). Default 0.
    #[arg(long = "ok-code", requires = "method")]
    pub ok_codes: Vec<u32>,
    /// Calls per second. Default: the file's `load.rate`, else 100.
    #[arg(long)]
    pub rate: Option<f64>,
    #[arg(long, default_value_t = 30.0)]
    pub duration_secs: f64,
    /// Seconds of calls sent before measuring.
    #[arg(long, default_value_t = 5.0)]
    pub warmup_secs: f64,
    /// HTTP/2 connections the calls share. Default: the file's, else 2.
    #[arg(long)]
    pub connections: Option<usize>,
    /// The most calls in flight at once.
    #[arg(long, default_value_t = 64)]
    pub users: usize,
    /// A call without its whole answer after this long is a timeout.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Largest share of measured slots that may start late (>10 ms).
    #[arg(long, default_value_t = 0.01)]
    pub max_late_ratio: f64,
    /// With https://: a PEM bundle of the CAs to trust. Default: the
    /// system's roots.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<String>,
    /// With https://: accept any certificate (a self-made staging one).
    /// Never against production: anyone on the path can read the calls.
    #[arg(long)]
    pub dangerously_skip_certificate_verification: bool,
    /// Where load.json goes.
    #[arg(long, default_value = "target/parallax-load")]
    pub out: PathBuf,
}

/// Flags every HTTP load shares.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Base URL of the service (or the proxy in front of it).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 30.0)]
    pub duration_secs: f64,
    /// Seconds of load sent before measuring.
    #[arg(long, default_value_t = 5.0)]
    pub warmup_secs: f64,
    /// Linear ramp to the full rate at the start of the warm-up.
    #[arg(long, default_value_t = 0.0)]
    pub ramp_secs: f64,
    /// goose users: the most requests in flight.
    #[arg(long, default_value_t = 64)]
    pub users: usize,
    /// Largest share of measured slots that may start late (>10 ms).
    #[arg(long, default_value_t = 0.01)]
    pub max_late_ratio: f64,
    /// Where load.json and goose.html go.
    #[arg(long, default_value = "target/parallax-load")]
    pub out: PathBuf,
    /// This process's share of a run sent by N processes or machines:
    /// worker I of N takes slots I, I+N, I+2N, … of the whole run's
    /// schedule (give every worker the run's total rate and start them
    /// together); `parallax load merge` joins their load.json files.
    #[arg(long, value_name = "I/N", value_parser = parse_worker, default_value = "0/1")]
    pub worker: Worker,
    /// Threads sending. 1: one thread, each slot released by a timerfd on
    /// its own event loop (the least CPU per request); N: N threads (for
    /// rates one CPU cannot carry). 0 picks: one thread while this
    /// process's share of the rate is at most 10,000 requests/s, every
    /// CPU above.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// `I/N` with I < N.
fn parse_worker(text: &str) -> Result<Worker, String> {
    let (i, n) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not I/N (e.g. 0/4)"))?;
    let (index, of): (u64, u64) = (
        i.trim()
            .parse()
            .map_err(|_| format!("{i:?} is not a worker index"))?,
        n.trim()
            .parse()
            .map_err(|_| format!("{n:?} is not a worker count"))?,
    );
    if of == 0 || index >= of {
        return Err(format!(
            "{text:?}: the index must be below the count (0/4 … 3/4)"
        ));
    }
    Ok(Worker { index, of })
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub common: Common,
    /// Events per second (sent as batches).
    #[arg(long, default_value_t = 100_000.0)]
    pub events_per_sec: f64,
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1000)]
    pub tenants: u64,
    /// Zipf exponent of tenant popularity.
    #[arg(long, default_value_t = 1.1)]
    pub tenant_skew: f64,
    #[arg(long, default_value_t = 64)]
    pub payload_bytes: usize,
    /// Write one encoded batch to this file and exit (a body for other
    /// load tools such as wrk, for comparing generators).
    #[arg(long, value_name = "FILE")]
    pub write_batch: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 5_000.0)]
    pub ops_per_sec: f64,
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Zipf exponent over key ranks.
    #[arg(long, default_value_t = 1.0)]
    pub zipf: f64,
    #[arg(long, default_value_t = 1024)]
    pub value_size: usize,
}

#[derive(Debug, Args)]
pub struct WsArgs {
    /// host:port of the fan-out service (or the proxy).
    #[arg(long)]
    pub target: std::net::SocketAddr,
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// New connections per second (default: as fast as the server accepts).
    #[arg(long)]
    pub connect_rate: Option<f64>,
    /// Topics; worker processes are spread over them round-robin.
    #[arg(long, value_delimiter = ',', default_value = "load")]
    pub topics: Vec<String>,
    /// Notifications per second, spread over the topics.
    #[arg(long, default_value_t = 10.0)]
    pub notify_rate: f64,
    #[arg(long, default_value_t = 30.0)]
    pub duration_secs: f64,
    /// Source addresses, e.g. 127.0.0.2-127.0.0.17 (each gives ~28K ports).
    #[arg(long, default_value = "127.0.0.2-127.0.0.5")]
    pub source_addrs: String,
    /// Worker processes holding the clients (each at most 20,000
    /// descriptors here, so keep clients / workers below ~19,000).
    #[arg(long)]
    pub workers: Option<usize>,
    #[arg(long, default_value = "target/parallax-load")]
    pub out: PathBuf,
}

/// `load.json`: one load run, schema `parallax.load/v1`.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoadReport {
    /// `parallax.load/v1`.
    pub schema: String,
    pub created_at: String,
    pub command: String,
    pub machine: Machine,
    /// `ingest`, `cache` or `ws`.
    pub scenario: String,
    pub target: String,
    /// Requests per second asked for.
    pub target_rate_per_sec: f64,
    /// Requests per second completed in the measured phase.
    pub achieved_rate_per_sec: f64,
    /// Units (events per batch for ingest, else requests) per second.
    pub achieved_units_per_sec: f64,
    pub requests: u64,
    pub units: u64,
    pub errors: u64,
    /// Measured slots that started more than 10 ms late.
    pub late: u64,
    /// Slots never sent (the run overran).
    pub not_sent: u64,
    /// Whether the schedule was kept (see `--max-late-ratio`).
    pub held: bool,
    /// Latency from each slot's intended start, µs.
    pub latency: LatencySummary,
    /// The same, as a base64 HDR histogram (V2-deflate).
    pub histogram: String,
    pub timeline: Vec<Window>,
    pub error_samples: Vec<String>,
    /// Generator CPU-seconds (user + system) during the whole run.
    pub generator_cpu_seconds: f64,
    /// gRPC loads: measured calls per outcome (`OK`, `UNAVAILABLE`,
    /// `http 503`, `transport timeout`, …). Absent for HTTP loads.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub grpc_status: std::collections::BTreeMap<String, u64>,
}

impl LoadReport {
    /// This run as `parallax.results/v2` (docs/results-schema.md): one
    /// scenario whose one backend is the target, so a load test is tabled,
    /// reported and read (`parallax gate`, `parallax report serve`) like a
    /// side-by-side run. The target's CPU and RSS are not this process's to
    /// read: they are `null` (not measured), never zero.
    pub fn to_results(&self) -> RunResults {
        let mut results = RunResults::new(self.command.clone(), Mode::Direct);
        results.created_at = self.created_at.clone();
        results.machine = self.machine.clone();
        let measured_secs = if self.achieved_rate_per_sec > 0.0 {
            self.requests as f64 / self.achieved_rate_per_sec
        } else {
            0.0
        };
        let mut notes = vec![
            format!(
                "load test of {}: latency from each request's intended start (open model); {:.0} units/s",
                self.target, self.achieved_units_per_sec
            ),
            format!(
                "the load generator used {:.2} CPU-seconds",
                self.generator_cpu_seconds
            ),
        ];
        if !self.held {
            notes.push(format!(
                "the schedule was not held: {} late, {} not sent",
                self.late, self.not_sent
            ));
        }
        notes.extend(
            self.error_samples
                .iter()
                .take(3)
                .map(|e| format!("error: {e}")),
        );
        results.scenarios.push(ScenarioResult {
            scenario: self.scenario.clone(),
            unit: "requests".into(),
            target_rate_per_sec: self.target_rate_per_sec,
            duration_secs: measured_secs,
            warmup_secs: 0.0,
            backends: vec![BackendResult {
                name: "target".into(),
                language: String::new(),
                role: Role::Candidate,
                achieved_rate_per_sec: self.achieved_rate_per_sec,
                requests: self.requests,
                errors: self.errors,
                late: self.late,
                latency: self.latency,
                histogram: self.histogram.clone(),
                timeline: self.timeline.clone(),
                cpu_seconds: None,
                peak_rss_bytes: None,
                accounting: None,
                usage: Vec::new(),
                extra: Vec::new(),
            }],
            comparison: None,
            notes,
            routes: Vec::new(),
            budgets: None,
            capacity: None,
            noise: None,
        });
        results
    }
}

/// `results.json` (`parallax.results/v2`) and `report.html` of a load test
/// in `dir`, beside its `load.json`.
fn write_results(l: &LoadReport, dir: &Path) -> anyhow::Result<()> {
    let results = l.to_results();
    let json = dir.join("results.json");
    results.save(&json)?;
    std::fs::write(
        dir.join("report.html"),
        parallax_report::html::render(&results),
    )?;
    eprintln!(
        "results: {} ({}), report: {}",
        json.display(),
        parallax_report::results::SCHEMA,
        dir.join("report.html").display()
    );
    Ok(())
}

/// One phase of open-model load.
#[derive(Debug, Clone)]
pub struct Phase {
    pub url: String,
    pub rate_per_sec: f64,
    pub warmup: Duration,
    pub ramp: Duration,
    pub duration: Duration,
    pub users: usize,
    pub first_slot: u64,
    pub html: Option<PathBuf>,
    pub progress: bool,
    /// This process's share of the schedule.
    pub worker: Worker,
}

impl Phase {
    /// Full rate from the start, no warm-up, slots from 0, quiet, no report;
    /// callers change what differs.
    pub fn steady(url: String, rate_per_sec: f64, duration: Duration, users: usize) -> Self {
        Self {
            url,
            rate_per_sec,
            warmup: Duration::ZERO,
            ramp: Duration::ZERO,
            duration,
            users,
            first_slot: 0,
            html: None,
            progress: false,
            worker: Worker::ALONE,
        }
    }
}

/// Warm-up (unmeasured), then the measured phase.
pub fn drive<W: Workload>(
    runtime: &tokio::runtime::Runtime,
    workload: Arc<W>,
    phase: &Phase,
) -> anyhow::Result<OpenReport> {
    let schedule = |duration: Duration, ramp: Duration| Schedule {
        rate_per_sec: phase.rate_per_sec,
        ramp,
        duration,
        max_requests: u64::MAX,
    };
    if !phase.warmup.is_zero() {
        let mut config = OpenConfig::new(&phase.url, schedule(phase.warmup, phase.ramp));
        config.users = phase.users;
        config.worker = phase.worker;
        let warm = Offset {
            workload: Arc::clone(&workload),
            first: WARMUP_FIRST_SLOT + phase.first_slot,
        };
        runtime
            .block_on(open::run(warm, config))
            .context("warm-up")?;
    }
    let mut config = OpenConfig::new(&phase.url, schedule(phase.duration, Duration::ZERO));
    config.users = phase.users;
    config.worker = phase.worker;
    config.html_report = phase.html.clone();
    config.progress = phase.progress;
    let measured = Offset {
        workload,
        first: phase.first_slot,
    };
    Ok(runtime.block_on(open::run(measured, config))?)
}

/// Per-second windows of a report, shifted by `offset_secs`.
pub fn timeline(report: &OpenReport, offset_secs: f64) -> Vec<Window> {
    report
        .windows
        .iter()
        .map(|w| Window::from_histogram(offset_secs + w.t_secs, &w.latency_us, w.errors))
        .collect()
}

pub fn run(load: &Load) -> anyhow::Result<()> {
    match load {
        Load::Merge(args) => merge_files(args),
        Load::Ingest(args) => {
            let run_id = format!("load{}", unix_millis());
            let workload = IngestWorkload::new(&IngestConfig {
                batch_size: args.batch_size,
                tenants: args.tenants,
                tenant_skew: args.tenant_skew,
                payload_bytes: args.payload_bytes,
                run_id,
                seed: 1,
            })?;
            if let Some(path) = &args.write_batch {
                std::fs::write(path, workload.batch(0))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                return Ok(());
            }
            let rate = args.events_per_sec / args.batch_size as f64;
            http_load(&args.common, "ingest", workload, rate)
        }
        Load::Cache(args) => {
            let workload = CacheWorkload::new(&CacheConfig {
                rate_per_sec: args.ops_per_sec,
                read_ratio: args.read_ratio,
                keys: args.keys,
                zipf_exponent: args.zipf,
                value_size: args.value_size,
                ..CacheConfig::default()
            })?;
            http_load(&args.common, "cache", workload, args.ops_per_sec)
        }
        Load::Ws(args) => ws_load(args),
        Load::Http(args) => http(args),
        Load::Grpc(args) => grpc(args),
    }
}

/// `parallax load grpc`: needs no checkout, so `--out` is relative to the
/// current directory.
pub fn grpc(args: &GrpcArgs) -> anyhow::Result<()> {
    use parallax_harness::experiment::TrafficFile;
    use parallax_harness::grpc::GrpcSource;
    let file = match &args.experiment {
        Some(path) => TrafficFile::load(path)?,
        None => command_line_grpc(args)?,
    };
    let Some(grpc) = &file.traffic.grpc else {
        bail!(
            "{}: has no [traffic.grpc]; `parallax load http` sends HTTP templates",
            args.experiment
                .as_deref()
                .unwrap_or(Path::new("?"))
                .display()
        );
    };
    let mut grpc = grpc.clone();
    if let Some(c) = args.connections {
        grpc.connections = c;
    }
    let routes: Vec<&str> = file.routes.iter().map(|r| r.template.as_str()).collect();
    let source = Arc::new(
        GrpcSource::new(&file.name, &file.traffic, &grpc, &file.dir, &routes)
            .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.reason))?,
    );
    let rate = args.rate.unwrap_or(file.load.rate);
    let tls = if args.target.starts_with("https://") {
        let c = parallax_proxy::tls::UpstreamTlsConfig {
            ca_file: args.ca_file.clone(),
            dangerously_skip_certificate_verification: args
                .dangerously_skip_certificate_verification,
            ..Default::default()
        };
        Some(
            parallax_proxy::tls::client_config("--ca-file", &c)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        )
    } else {
        None
    };
    let warmup = secs(args.warmup_secs)?;
    let mut config = source.config(
        &args.target,
        tls,
        rate,
        (warmup + secs(args.duration_secs)?).as_secs_f64(),
    )?;
    config.warmup = warmup;
    config.concurrency = args.users;
    config.timeout = Duration::from_millis(args.timeout_ms);
    std::fs::create_dir_all(&args.out)?;
    eprintln!(
        "grpc: {rate:.1} calls/s to {} over {} HTTP/2 connections for {} s after a {:?} warm-up",
        args.target, config.connections, args.duration_secs, warmup
    );
    let cpu_before = crate::procstat::read(std::process::id())?.cpu_seconds;
    let report = source.send(&config)?;
    let cpu = crate::procstat::read(std::process::id())?.cpu_seconds - cpu_before;
    let open = report.to_open_report();
    let held = open.held(args.max_late_ratio);
    let load = LoadReport {
        schema: "parallax.load/v1".into(),
        created_at: parallax_report::results::now_rfc3339(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: Machine::detect(),
        scenario: format!("grpc:{}", file.name),
        target: args.target.clone(),
        target_rate_per_sec: rate,
        achieved_rate_per_sec: open.achieved_rate(),
        achieved_units_per_sec: open.achieved_units_rate(),
        requests: open.requests,
        units: open.units,
        errors: open.errors,
        late: open.late,
        not_sent: open.not_sent,
        held,
        latency: LatencySummary::from_histogram(&open.latency_us),
        histogram: histogram::encode(&open.latency_us),
        timeline: Vec::new(),
        error_samples: open.error_samples.clone(),
        generator_cpu_seconds: cpu,
        grpc_status: report.by_code(),
    };
    print_summary(&load);
    println!("grpc-status: {:?}", load.grpc_status);
    let path = args.out.join("load.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&load)?)?;
    eprintln!("report: {}", path.display());
    // The common results schema too, as every other load writes it.
    write_results(&load, &args.out)?;
    if load.errors > 0 {
        bail!(
            "{} calls failed: {:?}{}",
            load.errors,
            load.grpc_status,
            report
                .connect_error
                .as_deref()
                .map(|e| format!("; the first connection failure: {e}"))
                .unwrap_or_default()
        );
    }
    if !held {
        bail!(
            "the target rate was not held: {:.1}/s of {:.1}/s, {} late, {} not sent",
            load.achieved_rate_per_sec,
            rate,
            load.late,
            load.not_sent
        );
    }
    Ok(())
}

/// The one call of `--method`, `--json`, `--metadata`, `--value`, written
/// as the experiment file it stands for and read like one (so errors name
/// the same fields).
fn command_line_grpc(args: &GrpcArgs) -> anyhow::Result<parallax_harness::experiment::TrafficFile> {
    use std::fmt::Write as _;
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let abs = |p: &Path| -> anyhow::Result<String> {
        Ok(std::path::absolute(p)
            .with_context(|| format!("{}: not a usable path", p.display()))?
            .display()
            .to_string())
    };
    let mut text = String::from("name = \"grpc\"\n[traffic.values]\n");
    for v in &args.values {
        let (name, spec) = v
            .split_once('=')
            .with_context(|| format!("--value {v:?}: give NAME={{ kind = ... }}"))?;
        let _ = writeln!(text, "{} = {}", name.trim(), spec.trim());
    }
    let _ = writeln!(text, "[traffic.grpc]");
    if let Some(d) = &args.descriptor_set {
        let _ = writeln!(text, "descriptor_set = {}", quote(&abs(d)?));
    }
    let _ = writeln!(text, "[[traffic.grpc.calls]]");
    let _ = writeln!(
        text,
        "method = {}",
        quote(args.method.as_deref().unwrap_or(""))
    );
    match (&args.json, &args.message_bytes_file) {
        (Some(json), _) => match json.strip_prefix('@') {
            Some(file) => {
                let _ = writeln!(text, "message_file = {}", quote(&abs(Path::new(file))?));
            }
            None => {
                let _ = writeln!(text, "message = {}", quote(json));
            }
        },
        (None, Some(file)) => {
            let _ = writeln!(text, "message_bytes_file = {}", quote(&abs(file)?));
        }
        (None, None) => bail!(
            "give the request message: --json TEMPLATE (or @FILE) or --message-bytes-file FILE"
        ),
    }
    if !args.ok_codes.is_empty() {
        let codes: Vec<String> = args.ok_codes.iter().map(u32::to_string).collect();
        let _ = writeln!(text, "ok_codes = [{}]", codes.join(", "));
    }
    if !args.metadata.is_empty() {
        let _ = writeln!(text, "[traffic.grpc.calls.metadata]");
        for h in &args.metadata {
            let (name, value) = h
                .split_once(':')
                .with_context(|| format!("--metadata {h:?}: give NAME: VALUE"))?;
            let _ = writeln!(text, "{} = {}", quote(name.trim()), quote(value.trim()));
        }
    }
    traffic_from_command_line(&text, "call")
}

/// Loads a traffic file written from the command line, through the same
/// loader (and errors) as a user's file.
fn traffic_from_command_line(
    text: &str,
    what: &str,
) -> anyhow::Result<parallax_harness::experiment::TrafficFile> {
    // One directory per call: two calls in one process (tests) must not
    // read each other's file.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("parallax-load-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("command-line.toml");
    std::fs::write(&path, text)?;
    let file = parallax_harness::experiment::TrafficFile::load(&path);
    let _ = std::fs::remove_dir_all(&dir);
    file.map_err(|e| anyhow::anyhow!("the command line's {what}: {e}"))
}

/// `parallax load http --experiment FILE --target URL`: needs no checkout,
/// so `--out` is relative to the current directory.
pub fn http(args: &HttpArgs) -> anyhow::Result<()> {
    use parallax_harness::experiment::TrafficFile;
    use parallax_harness::traffic::TemplateWorkload;
    let file = match &args.experiment {
        Some(path) => TrafficFile::load(path)?,
        None => command_line_traffic(args)?,
    };
    let routes: Vec<&str> = file.routes.iter().map(|r| r.template.as_str()).collect();
    let workload = TemplateWorkload::new(&file.name, &file.traffic, &file.dir, &routes)
        .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.reason))?;
    let rate = args.rate.unwrap_or(file.load.rate);
    http_load(&args.common, &file.name, workload, rate)
}

/// The one template of `--path`, `--method`, `--header`, `--body` and
/// `--value`, written as the experiment file it stands for and read like
/// one (so errors name the same fields).
fn command_line_traffic(
    args: &HttpArgs,
) -> anyhow::Result<parallax_harness::experiment::TrafficFile> {
    use std::fmt::Write as _;
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut text = String::from("name = \"http\"\n[traffic.values]\n");
    for v in &args.values {
        let (name, spec) = v
            .split_once('=')
            .with_context(|| format!("--value {v:?}: give NAME={{ kind = ... }}"))?;
        let _ = writeln!(text, "{} = {}", name.trim(), spec.trim());
    }
    let _ = writeln!(text, "[[traffic.requests]]");
    let _ = writeln!(
        text,
        "path = {}",
        quote(args.path.as_deref().unwrap_or("/"))
    );
    let _ = writeln!(text, "method = {}", quote(&args.method));
    if let Some(body) = &args.body {
        let _ = writeln!(text, "body = {}", quote(body));
    }
    if !args.headers.is_empty() {
        let _ = writeln!(text, "[traffic.requests.headers]");
        for h in &args.headers {
            let (name, value) = h
                .split_once(':')
                .with_context(|| format!("--header {h:?}: give NAME: VALUE"))?;
            let _ = writeln!(text, "{} = {}", quote(name.trim()), quote(value.trim()));
        }
    }
    traffic_from_command_line(&text, "template")
}

fn http_load<W: Workload>(
    common: &Common,
    scenario: &str,
    workload: W,
    rate: f64,
) -> anyhow::Result<()> {
    // Relative to the current directory, as every other --out.
    let out = common.out.clone();
    std::fs::create_dir_all(&out)?;
    let share = rate / common.worker.of as f64;
    let runtime = runtime(sending_threads(common.threads, share))?;
    let cpu_before = crate::procstat::read(std::process::id())?.cpu_seconds;
    let phase = Phase {
        url: common.target.trim_end_matches('/').to_owned(),
        rate_per_sec: rate,
        warmup: secs(common.warmup_secs)?,
        ramp: secs(common.ramp_secs)?,
        duration: secs(common.duration_secs)?,
        users: common.users,
        first_slot: 0,
        html: Some(out.join("goose.html")),
        progress: true,
        worker: common.worker,
    };
    eprintln!(
        "{scenario}: {rate:.1} requests/s to {} for {:?} after a {:?} warm-up",
        phase.url, phase.duration, phase.warmup
    );
    let report = drive(&runtime, Arc::new(workload), &phase)?;
    let cpu = crate::procstat::read(std::process::id())?.cpu_seconds - cpu_before;
    let held = report.held(common.max_late_ratio);
    let load = LoadReport {
        schema: "parallax.load/v1".into(),
        created_at: parallax_report::results::now_rfc3339(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: Machine::detect(),
        scenario: scenario.into(),
        target: phase.url.clone(),
        target_rate_per_sec: report.target_rate_per_sec,
        achieved_rate_per_sec: report.achieved_rate(),
        achieved_units_per_sec: report.achieved_units_rate(),
        requests: report.requests,
        units: report.units,
        errors: report.errors,
        late: report.late,
        not_sent: report.not_sent,
        held,
        latency: LatencySummary::from_histogram(&report.latency_us),
        histogram: histogram::encode(&report.latency_us),
        timeline: timeline(&report, 0.0),
        error_samples: report.error_samples.clone(),
        generator_cpu_seconds: cpu,
        grpc_status: Default::default(),
    };
    print_summary(&load);
    let path = out.join("load.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&load)?)?;
    write_results(&load, &out)?;
    eprintln!(
        "report: {} and {}",
        path.display(),
        out.join("goose.html").display()
    );
    if load.errors > 0 {
        bail!(
            "{} requests failed; first: {:?}",
            load.errors,
            load.error_samples.first()
        );
    }
    if !held {
        bail!(
            "the target rate was not held: {:.1}/s of {:.1}/s, {} late, {} not sent",
            load.achieved_rate_per_sec,
            rate,
            load.late,
            load.not_sent
        );
    }
    Ok(())
}

/// The common side-by-side table (`parallax_report::table`), the target
/// as its one backend.
fn print_summary(l: &LoadReport) {
    println!("{}", parallax_report::table::render(&l.to_results()));
}

/// Notifications to `POST /v1/notify`, spread over topics, each with its
/// own id and `published_at_unix_us` stamped when it is sent.
pub struct NotifyWorkload {
    pub topics: Vec<String>,
}

impl Workload for NotifyWorkload {
    fn name(&self) -> &'static str {
        "notify"
    }

    fn request(&self, n: u64) -> Request {
        let topic = &self.topics[(n % self.topics.len() as u64) as usize];
        Request {
            method: GooseMethod::Post,
            path: "/v1/notify".into(),
            // The id and the timestamp are the client's, so a notification
            // mirrored to a shadow gives byte-identical frames there.
            body: Some(Bytes::from(format!(
                r#"{{"id":"n-{n}","topic":"{topic}","published_at_unix_us":{},"body":{{"seq":{n}}}}}"#,
                parallax_loadgen::ws::now_unix_us()
            ))),
            content_type: Some("application/json"),
            units: 1,
            headers: Vec::new(),
        }
    }

    fn judge(&self, _n: u64, status: u16, _body: &[u8]) -> Verdict {
        if status == 202 {
            Verdict::Ok
        } else {
            Verdict::Error
        }
    }
}

/// Parses `127.0.0.2-127.0.0.17` (or one address) into a count of sources
/// starting at 127.0.0.2, which is what the workers bind.
pub fn source_count(range: &str) -> anyhow::Result<u8> {
    let parse = |s: &str| -> anyhow::Result<std::net::Ipv4Addr> {
        s.trim()
            .parse()
            .with_context(|| format!("{s:?} is not an IPv4 address"))
    };
    let (first, last) = match range.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(range)?, parse(range)?),
    };
    let [a, b, c, d] = first.octets();
    let [e, f, g, h] = last.octets();
    if (a, b, c, d) != (127, 0, 0, 2) || (e, f, g) != (127, 0, 0) || h < d || h > 254 {
        bail!("--source-addrs must be a range 127.0.0.2-127.0.0.N (the workers bind from 127.0.0.2 up)");
    }
    Ok(h - d + 1)
}

fn ws_load(args: &WsArgs) -> anyhow::Result<()> {
    // Relative to the current directory, as every other --out.
    let out = args.out.clone();
    std::fs::create_dir_all(&out)?;
    if args.topics.is_empty() {
        bail!("--topics needs at least one topic");
    }
    let sources = source_count(&args.source_addrs)?;
    let workers = args
        .workers
        .unwrap_or_else(|| args.clients.div_ceil(15_000).max(1));
    let per_worker = args.clients.div_ceil(workers);
    eprintln!(
        "ws: {} clients in {workers} worker processes from {sources} source addresses",
        args.clients
    );
    let mut spec =
        parallax_harness::fleet::FleetSpec::new(crate::workspace::self_exe()?, args.target);
    spec.per_worker = per_worker;
    spec.sources = sources;
    spec.connect_rate = args.connect_rate;
    // Workers are spread over the topics round-robin.
    let mut fleet = parallax_harness::fleet::Fleet::new(spec);
    let mut left = args.clients;
    for w in 0.. {
        if left == 0 {
            break;
        }
        let n = per_worker.max(1).min(left);
        fleet.add(&topic_path(&args.topics[w % args.topics.len()]), n)?;
        left -= n;
    }
    eprintln!(
        "  {} connected, {} failed",
        fleet.connected(),
        fleet.failed()
    );
    if let Some(e) = fleet.first_error() {
        eprintln!("  first connect error: {e}");
    }
    fleet.reset()?;
    let runtime = runtime(sending_threads(0, args.notify_rate))?;
    let phase = Phase {
        html: Some(out.join("goose.html")),
        progress: true,
        ..Phase::steady(
            format!("http://{}", args.target),
            args.notify_rate,
            secs(args.duration_secs)?,
            16,
        )
    };
    let workload = NotifyWorkload {
        topics: args.topics.clone(),
    };
    let report = drive(&runtime, Arc::new(workload), &phase)?;
    let expected: u64 = expected_deliveries(&fleet, &args.topics, report.requests);
    let latency = fleet.await_frames(expected, Duration::from_secs(30))?;
    print_ws(
        &report,
        &latency,
        expected,
        fleet.connected(),
        fleet.failed(),
    );
    let summary = serde_json::json!({
        "schema": "parallax.load-ws/v1",
        "created_at": parallax_report::results::now_rfc3339(),
        "machine": Machine::detect(),
        "clients": args.clients,
        "connected": fleet.connected(),
        "connect_failed": fleet.failed(),
        "notifications": report.requests,
        "publish_errors": report.errors,
        "expected_deliveries": expected,
        "delivered": latency.len(),
        "delivery_latency": LatencySummary::from_histogram(&latency),
        "delivery_histogram": histogram::encode(&latency),
        "publish_latency": LatencySummary::from_histogram(&report.latency_us),
    });
    std::fs::write(out.join("load.json"), serde_json::to_vec_pretty(&summary)?)?;
    // The same in the common schema: the deliveries are the requests.
    let missing = expected.saturating_sub(latency.len());
    let deliveries = LoadReport {
        schema: "parallax.load/v1".into(),
        created_at: parallax_report::results::now_rfc3339(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: Machine::detect(),
        scenario: "ws".into(),
        target: args.target.to_string(),
        target_rate_per_sec: args.notify_rate * fleet.connected() as f64,
        achieved_rate_per_sec: latency.len() as f64 / report.measured_secs.max(f64::MIN_POSITIVE),
        achieved_units_per_sec: latency.len() as f64 / report.measured_secs.max(f64::MIN_POSITIVE),
        requests: latency.len(),
        units: latency.len(),
        errors: report.errors + missing + fleet.failed() as u64,
        late: report.late,
        not_sent: report.not_sent,
        held: report.held(1.0),
        latency: LatencySummary::from_histogram(&latency),
        histogram: histogram::encode(&latency),
        timeline: Vec::new(),
        error_samples: report.error_samples.clone(),
        generator_cpu_seconds: crate::procstat::read(std::process::id())?.cpu_seconds,
        grpc_status: Default::default(),
    };
    write_results(&deliveries, &out)?;
    if fleet.failed() > 0 || report.errors > 0 || latency.len() < expected {
        bail!(
            "{} connects failed, {} publishes failed, {} of {} deliveries arrived",
            fleet.failed(),
            report.errors,
            latency.len(),
            expected
        );
    }
    Ok(())
}

/// The fan-out twins' subscribe path for one topic.
fn topic_path(topic: &str) -> String {
    format!("/v1/subscribe?topics={topic}")
}

/// Notifications go round-robin over the topics; each reaches every
/// connection subscribed to its topic.
pub fn expected_deliveries(
    fleet: &parallax_harness::fleet::Fleet,
    topics: &[String],
    sent: u64,
) -> u64 {
    let k = topics.len() as u64;
    topics
        .iter()
        .enumerate()
        .map(|(i, topic)| {
            let to_topic = sent / k + u64::from((i as u64) < sent % k);
            to_topic * fleet.connected_on(&topic_path(topic)) as u64
        })
        .sum()
}

fn print_ws(
    report: &OpenReport,
    latency: &Histogram<u64>,
    expected: u64,
    connected: usize,
    failed: usize,
) {
    let s = LatencySummary::from_histogram(latency);
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "ws: {connected} connected ({failed} failed); {} notifications at {:.1}/s; {} of {expected} deliveries",
        report.requests,
        report.achieved_rate(),
        latency.len()
    );
    println!(
        "delivery latency ms: p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        ms(s.p50_us),
        ms(s.p99_us),
        ms(s.p999_us),
        ms(s.max_us)
    );
}

/// The rate one sending thread carries comfortably (about 0.6 of a CPU
/// on the 2-vCPU VM of docs/benchmarks.md); above it `--threads 0` uses
/// every CPU.
pub const ONE_THREAD_MAX_RATE: f64 = 10_000.0;

/// How many threads send for a process whose share of the run is `rate`
/// requests/s: `threads` when given, else one up to
/// [`ONE_THREAD_MAX_RATE`] and every CPU above it.
pub fn sending_threads(threads: usize, rate: f64) -> usize {
    match threads {
        0 if rate <= ONE_THREAD_MAX_RATE => 1,
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// The runtime goose runs on. With one thread it is tokio's current-thread
/// runtime, and the open model releases slots from a timerfd on this
/// thread's own reactor (`Metronome::start_on_reactor`): one wake-up per
/// slot, none across threads (docs/benchmarks.md: 89–95 against 114–124 µs
/// of CPU per request at 5,000/s on the 2-vCPU VM). With more, tokio's
/// multi-thread runtime, whose slots come from the metronome's own thread
/// (each release wakes a parked worker, which may wake another to steal:
/// more CPU per request, but the rate is no longer bounded by one CPU).
/// `--worker i/n` splits one schedule over several processes either way.
pub fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    Ok(runtime)
}

pub fn secs(value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("{value} is not a duration in seconds"))
}

pub fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_thread_sends_up_to_its_rate_and_every_cpu_above_unless_told() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(sending_threads(0, 5_000.0), 1);
        assert_eq!(sending_threads(0, ONE_THREAD_MAX_RATE), 1);
        assert_eq!(sending_threads(0, 50_000.0), cpus);
        assert_eq!(sending_threads(3, 5_000.0), 3);
        assert_eq!(sending_threads(1, 50_000.0), 1);
    }

    #[test]
    fn source_ranges_start_at_127_0_0_2() {
        assert_eq!(source_count("127.0.0.2-127.0.0.17").unwrap(), 16);
        assert_eq!(source_count("127.0.0.2").unwrap(), 1);
        assert!(source_count("127.0.0.3-127.0.0.9").is_err());
        assert!(source_count("10.0.0.2-10.0.0.9").is_err());
    }

    #[test]
    fn notifications_cycle_through_the_topics() {
        let w = NotifyWorkload {
            topics: vec!["a".into(), "b".into()],
        };
        let body = |n| String::from_utf8(w.request(n).body.unwrap().to_vec()).unwrap();
        assert!(body(0).starts_with(r#"{"id":"n-0","topic":"a","published_at_unix_us":"#));
        assert!(body(3).starts_with(r#"{"id":"n-3","topic":"b","#));
        assert!(body(3).ends_with(r#","body":{"seq":3}}"#));
        assert_eq!(w.judge(0, 202, b""), Verdict::Ok);
        assert_eq!(w.judge(0, 400, b""), Verdict::Error);
    }

    fn grpc_args(extra: &[&str]) -> GrpcArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            load: Load,
        }
        let mut argv = vec!["load", "grpc", "--target", "http://127.0.0.1:1"];
        argv.extend(extra);
        match <Cli as clap::Parser>::try_parse_from(argv).unwrap().load {
            Load::Grpc(args) => args,
            _ => unreachable!(),
        }
    }

    #[test]
    fn one_call_on_the_command_line_is_read_as_a_grpc_traffic_section() {
        let args = grpc_args(&[
            "--method",
            "parallax.ingest.v1.IngestService/Publish",
            "--json",
            r#"{"events":[{"eventId":"e{{n}}"}]}"#,
            "--value",
            r#"n={ kind = "sequence" }"#,
            "--metadata",
            "x-run: {{n}}",
            "--ok-code",
            "0",
            "--ok-code",
            "3",
        ]);
        let file = command_line_grpc(&args).unwrap();
        let grpc = file.traffic.grpc.expect("a [traffic.grpc]");
        let call = &grpc.calls[0];
        assert_eq!(call.method, "parallax.ingest.v1.IngestService/Publish");
        assert_eq!(call.metadata["x-run"], "{{n}}");
        assert_eq!(call.ok_codes, [0, 3]);
        assert!(file.traffic.values.contains_key("n"));
    }

    #[test]
    fn a_command_line_call_that_cannot_be_sent_names_its_flag_as_a_field() {
        let e = command_line_grpc(&grpc_args(&[
            "--method",
            "parallax.ingest.v1.IngestService/Nope",
            "--json",
            "{}",
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("traffic.grpc.calls[0].method"), "{e}");
        assert!(e.contains("it has: Publish"), "{e}");
        let e = command_line_grpc(&grpc_args(&[
            "--method",
            "parallax.ingest.v1.IngestService/Publish",
            "--json",
            r#"{"event":[]}"#,
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("traffic.grpc.calls[0].message"), "{e}");
    }
}
