//! `parallax bench cache | cache-churn`: the session-cache twins under the
//! same open-model load, one at a time, side by side.
//!
//! Both twins are built (release) and run **one at a time** on a fresh
//! process each, in A/B/B/A order — go, rust, rust, go — so that neither
//! competes with the other for the machine's cores and slow drift (thermal,
//! page cache, a noisy neighbour) cancels out instead of favouring one side.
//! The load generator ([`parallax_loadgen`]) runs in this process on a
//! current-thread tokio runtime by default: on a 2-core machine that is one
//! core for the driver and one for the service, and the driver's own CPU is
//! reported so a saturated driver is visible.
//!
//! A backend's latency is over both of its runs (their histograms added),
//! its CPU-seconds the sum, its peak RSS the larger; each run's p99 is
//! kept too, so the noise between runs is visible. CPU-seconds and RSS are
//! read from `/proc` around the measured phase (warm-up included,
//! preload/fill excluded); peak RSS is the process's `VmHWM`.
//!
//! Tuning: none. Both twins get the same `--capacity-bytes` and `--shards`;
//! Go runs with its defaults (GOGC=100, no GOMEMLIMIT, GOMAXPROCS = the
//! machine's cores) unless those variables are set in this command's
//! environment, in which case they are inherited and recorded in
//! `results.json`. The Rust twin uses its default allocator.
//!
//! Output: the one results model (`parallax.results/v2`, direct mode) in
//! `<out>/<bench>/results.json` with `report.html` beside it, and the same
//! table `parallax run` prints, so `parallax gate` judges a bench and two
//! benches compare (`--baseline`). The bench-specific figures (hit ratio,
//! CPU µs per request, RSS after the fill and after the churn, ...) are
//! named extra figures of each backend (`docs/results-schema.md`), each
//! run's p99 among them; the configuration, the twins' flags, Go's
//! environment, pinning and the load average are the scenario's notes.
//! These benches keep their own driver rather than run on
//! `parallax_harness::runner` (why: `parallax_harness::rounds`).
//!
//! The command exits non-zero when a backend errored — a transport error or
//! an HTTP answer other than the expected ones (a 404 on a read is a miss,
//! not an error) — or did not shut down cleanly. Late slots are reported,
//! not failed on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde::Serialize;

use parallax_harness::rounds::{self, Round};
use parallax_report::{Better, ExtraMetric, Mode, Role, RunResults, ScenarioResult};

use parallax_loadgen::cache::{self, CacheConfig};
use parallax_loadgen::churn::{self, ChurnConfig};
use parallax_loadgen::pacing::latency_histogram;
use parallax_loadgen::result::{CacheResult, ChurnResult, Errors, Load, ProcessStats};

use crate::procstat::{self, Usage};
use crate::twin::{self, Binaries, Twin};

const SERVICE: &str = "session-cache";
/// A/B/B/A: each backend goes first once and last once.
const ORDER: [&str; 4] = ["go", "rust", "rust", "go"];

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Read-mostly Zipf-skewed GET/PUT load at a fixed arrival rate:
    /// latency (from each request's intended time), CPU and RSS.
    Cache(CacheArgs),
    /// Fill the cache with random-size values, then PUT random keys so
    /// eviction never stops: RSS against the cache's own accounting.
    CacheChurn(ChurnArgs),
    /// WebSocket fan-out: idle memory per connection at 10K and 19K
    /// connections, broadcast latency at 1/s and 100/s.
    Fanout(crate::fanout::FanoutArgs),
    /// One share of `fanout`'s clients (started by `fanout` itself).
    #[command(hide = true)]
    FanoutWorker(crate::fanout::WorkerArgs),
    /// The shadowing proxy against direct-to-primary and nginx `mirror`:
    /// max throughput, added latency at 50% load, a 500 ms-slow shadow.
    Proxy(crate::proxy_bench::ProxyBenchArgs),
}

/// Flags both benches share.
#[derive(Debug, Args)]
pub struct Common {
    /// `--shards` for both twins.
    #[arg(long, default_value_t = 64)]
    pub shards: u32,
    /// A slot taken this many ms after its time counts as late.
    #[arg(long, default_value_t = 1.0)]
    pub late_threshold_ms: f64,
    /// Driver threads: 1 runs the driver on a current-thread runtime (one
    /// core); more use a multi-thread runtime with that many workers.
    #[arg(long, default_value_t = 1)]
    pub driver_threads: usize,
    /// Pin each twin to these CPUs (a `taskset` list, e.g. `1`) from its
    /// start, so GOMAXPROCS and tokio's worker count follow; default: not
    /// pinned (both runtimes see every core).
    #[arg(long)]
    pub server_cpus: Option<String>,
    /// Pin this process (the driver) to these CPUs, e.g. `0`.
    #[arg(long)]
    pub driver_cpus: Option<String>,
    /// Before each run, wait up to this many seconds for the rest of the
    /// machine to go quiet (under 0.2 of a core busy over one second); other
    /// work on a small machine skews every figure. 0: don't wait.
    #[arg(long, default_value_t = 120)]
    pub quiet_wait_secs: u64,
    /// Seed for keys, operations and value sizes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where results.json and the twins' logs go (a subfolder per bench).
    #[arg(long, default_value = "target/parallax-bench")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Target arrival rate, requests per second.
    #[arg(long, default_value_t = 50_000.0)]
    pub rate: f64,
    /// Measured seconds per run, after the warm-up.
    #[arg(long, default_value_t = 30.0)]
    pub duration_secs: f64,
    /// Seconds at the full schedule before measuring.
    #[arg(long, default_value_t = 5.0)]
    pub warmup_secs: f64,
    /// Linear ramp from 0 to --rate at the start, in seconds.
    #[arg(long, default_value_t = 0.0)]
    pub ramp_secs: f64,
    /// Share of requests that are GETs; the rest are PUTs.
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,
    /// Key space: `s-0` … `s-<keys-1>`, all PUT once before the run.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Zipf exponent of key popularity (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    pub zipf: f64,
    /// Bytes per PUT value.
    #[arg(long, default_value_t = 1024)]
    pub value_size: usize,
    /// `--capacity-bytes` for both twins.
    #[arg(long, default_value_t = 268_435_456)]
    pub capacity_bytes: u64,
    /// Keep-alive connections (the most requests in flight).
    #[arg(long, default_value_t = 128)]
    pub connections: usize,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ChurnArgs {
    /// `--capacity-bytes` for both twins; the fill writes 1.1 × this.
    #[arg(long, default_value_t = 1 << 30)]
    pub capacity_bytes: u64,
    /// Churn PUTs after the fill.
    #[arg(long, default_value_t = 200_000)]
    pub ops: u64,
    /// Churn PUTs per second.
    #[arg(long, default_value_t = 5_000.0)]
    pub rate: f64,
    /// Churn keys are uniform over this many times the keys the fill stored.
    #[arg(long, default_value_t = 4.0)]
    pub key_space_factor: f64,
    /// Smallest value, bytes.
    #[arg(long, default_value_t = 64)]
    pub min_value_bytes: usize,
    /// Largest value, bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_value_bytes: usize,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    #[command(flatten)]
    pub common: Common,
}

/// One backend run.
#[derive(Debug)]
struct Run<R> {
    backend: &'static str,
    /// 1–4, in A/B/B/A order.
    round: usize,
    process: ProcessStats,
    clean_exit: bool,
    result: R,
}

/// What a scenario is, for the results file's title.
struct Shape {
    /// The scenario's name in results.json (`bench-cache`): apart from
    /// `parallax run`'s scenarios, so a `--baseline` comparison pairs a
    /// bench with the same bench.
    scenario: &'static str,
    unit: &'static str,
    target_rate_per_sec: f64,
    duration_secs: f64,
    warmup_secs: f64,
}

/// The machine and setup a bench ran on, as notes: what skews its figures.
fn setup_notes(bench: &Bencher, config: &impl Serialize) -> Vec<String> {
    let cpu_model = procstat::cpu_model();
    let go_env: Vec<String> = ["GOGC", "GOMEMLIMIT", "GOMAXPROCS"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
        .collect();
    let pinned = |cpus: &Option<String>| {
        cpus.as_deref()
            .map_or("unpinned".into(), |c| format!("CPUs {c}"))
    };
    vec![
        format!(
            "config: {}",
            serde_json::to_string(config).unwrap_or_default()
        ),
        format!(
            "twins: {} ({}); Go environment: {}",
            bench.twin_flags.join(" "),
            pinned(&bench.server_cpus),
            if go_env.is_empty() {
                "defaults".to_owned()
            } else {
                go_env.join(" ")
            }
        ),
        format!(
            "driver: {} thread(s), {}; CPU: {cpu_model}",
            bench.driver_threads,
            pinned(&bench.driver_cpus)
        ),
        format!(
            "A/B/B/A, one twin at a time, each on a fresh process; load average at the end: {}",
            procstat::load_average()
        ),
    ]
}

pub fn run(root: &Path, bench: &Bench) -> anyhow::Result<()> {
    match bench {
        Bench::Cache(args) => run_cache(root, args),
        Bench::CacheChurn(args) => run_churn(root, args),
        Bench::Fanout(args) => crate::fanout::run(root, args),
        Bench::FanoutWorker(args) => crate::fanout::worker(args),
        Bench::Proxy(args) => crate::proxy_bench::run(root, args),
    }
}

fn run_cache(root: &Path, args: &CacheArgs) -> anyhow::Result<()> {
    let config = CacheConfig {
        rate_per_sec: args.rate,
        duration_secs: args.duration_secs,
        warmup_secs: args.warmup_secs,
        ramp_secs: args.ramp_secs,
        read_ratio: args.read_ratio,
        keys: args.keys,
        zipf_exponent: args.zipf,
        value_size: args.value_size,
        connections: args.connections,
        late_after_ms: args.common.late_threshold_ms,
        seed: args.common.seed,
        ..CacheConfig::default()
    };
    config.validate()?;
    let bench = Bencher::new(root, "cache", args.capacity_bytes, &args.common)?;
    let runs = bench.ab_ba(|twin, runtime| {
        eprintln!("  preloading {} keys", config.keys);
        let preloaded = runtime.block_on(cache::preload(twin.addr, &config))?;
        let before = Sample::take(twin)?;
        eprintln!(
            "  {} req/s for {} s (+{} s warm-up)",
            config.rate_per_sec, config.duration_secs, config.warmup_secs
        );
        let result = runtime.block_on(cache::run(twin.addr, &config, preloaded))?;
        let process = before.until(twin)?;
        Ok((result, process))
    })?;
    let shape = Shape {
        scenario: "bench-cache",
        unit: "requests",
        target_rate_per_sec: config.rate_per_sec,
        duration_secs: config.duration_secs,
        warmup_secs: config.warmup_secs,
    };
    bench.finish(&config, &shape, &runs)
}

fn run_churn(root: &Path, args: &ChurnArgs) -> anyhow::Result<()> {
    let config = ChurnConfig {
        capacity_bytes: args.capacity_bytes,
        ops: args.ops,
        rate_per_sec: args.rate,
        key_space_factor: args.key_space_factor,
        min_value_bytes: args.min_value_bytes,
        max_value_bytes: args.max_value_bytes,
        connections: args.connections,
        late_after_ms: args.common.late_threshold_ms,
        seed: args.common.seed,
        ..ChurnConfig::default()
    };
    config.validate()?;
    let bench = Bencher::new(root, "cache-churn", args.capacity_bytes, &args.common)?;
    let runs = bench.ab_ba(|twin, runtime| {
        eprintln!("  filling {} MiB of capacity", config.capacity_bytes >> 20);
        let filled = runtime.block_on(churn::fill(twin.addr, &config))?;
        let before = Sample::take(twin)?;
        eprintln!("  {} churn PUTs at {} /s", config.ops, config.rate_per_sec);
        let rss = || -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
            Ok(twin.usage()?.rss_bytes)
        };
        let result = runtime.block_on(churn::run(twin.addr, &config, filled, &rss))?;
        let process = before.until(twin)?;
        Ok((result, process))
    })?;
    let shape = Shape {
        scenario: "bench-cache-churn",
        unit: "puts",
        target_rate_per_sec: config.rate_per_sec,
        duration_secs: config.ops as f64 / config.rate_per_sec,
        warmup_secs: 0.0,
    };
    bench.finish(&config, &shape, &runs)
}

/// What the results model needs from a bench's own result type.
trait Measured {
    /// Failed requests; a backend with any failed the bench.
    fn errors(&self) -> &Errors;
    /// The paced run's schedule and latency.
    fn load(&self) -> &Load;
    /// The bench's own figures for this run.
    fn extra(&self, process: &ProcessStats) -> Vec<ExtraMetric>;
}

const CPU_NOTE: &str = "from /proc, warm-up included";

impl Measured for CacheResult {
    fn errors(&self) -> &Errors {
        &self.errors
    }

    fn load(&self) -> &Load {
        &self.load
    }

    fn extra(&self, process: &ProcessStats) -> Vec<ExtraMetric> {
        let sent = self.load.requests + self.load.warmup_requests;
        vec![
            ExtraMetric::new(
                "cpu_us_per_request",
                process.cpu_seconds * 1e6 / sent.max(1) as f64,
                "us",
                Some(Better::Lower),
                format!("the twin's CPU time per request sent ({CPU_NOTE})"),
            ),
            ExtraMetric::new(
                "hit_ratio",
                self.hit_ratio(),
                "ratio",
                None,
                "share of GETs answered 200 (a 404 is a miss): both twins should agree",
            ),
        ]
    }
}

impl Measured for ChurnResult {
    fn errors(&self) -> &Errors {
        &self.errors
    }

    fn load(&self) -> &Load {
        &self.load
    }

    fn extra(&self, process: &ProcessStats) -> Vec<ExtraMetric> {
        let lower = Some(Better::Lower);
        let bytes = |name: &str, v: u64, what: &str| {
            ExtraMetric::new(name, v as f64, "bytes", lower, what.to_owned())
        };
        vec![
            ExtraMetric::new(
                "fill_puts",
                self.fill_puts as f64,
                "count",
                None,
                "PUTs of the fill (1.1 x the capacity in random-size values)",
            ),
            bytes(
                "cache_bytes_after_fill",
                self.start.cache_bytes,
                "the cache's own accounting (cache_bytes gauge) after the fill",
            ),
            ExtraMetric::new(
                "entries_after_fill",
                self.start.cache_entries as f64,
                "count",
                None,
                "entries (cache_entries gauge) after the fill",
            ),
            bytes(
                "rss_after_fill_bytes",
                self.start.rss_bytes,
                "the twin's RSS right after the fill",
            ),
            ExtraMetric::new(
                "rss_per_accounted_byte_after_fill",
                self.start.rss_per_accounted_byte,
                "ratio",
                lower,
                "RSS / cache_bytes after the fill: the memory overhead of the store",
            ),
            bytes(
                "cache_bytes_after_churn",
                self.end.cache_bytes,
                "the cache's own accounting after the churn",
            ),
            bytes(
                "rss_after_churn_bytes",
                self.end.rss_bytes,
                "the twin's RSS right after the churn",
            ),
            ExtraMetric::new(
                "rss_per_accounted_byte_after_churn",
                self.end.rss_per_accounted_byte,
                "ratio",
                lower,
                "RSS / cache_bytes after the churn: overhead plus fragmentation",
            ),
            ExtraMetric::new(
                "rss_growth_percent",
                self.rss_growth_pct,
                "percent",
                lower,
                "RSS growth over the churn at a constant accounted size (fragmentation)",
            ),
            ExtraMetric::new(
                "cpu_us_per_put",
                process.cpu_seconds * 1e6 / self.load.requests.max(1) as f64,
                "us",
                lower,
                "the twin's CPU time per churn PUT (from /proc)",
            ),
        ]
    }
}

/// The parts every bench shares: binaries, output folder, runtime.
struct Bencher {
    name: &'static str,
    binaries: Binaries,
    twin_flags: Vec<String>,
    out: PathBuf,
    runtime: tokio::runtime::Runtime,
    driver_threads: usize,
    quiet_wait: Duration,
    server_cpus: Option<String>,
    driver_cpus: Option<String>,
    ready_client: reqwest::blocking::Client,
}

impl Bencher {
    fn new(
        root: &Path,
        name: &'static str,
        capacity_bytes: u64,
        common: &Common,
    ) -> anyhow::Result<Self> {
        let binaries = twin::build(root, SERVICE)?;
        let out = root.join(&common.out).join(name);
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        if let Some(cpus) = &common.driver_cpus {
            // After the build (which should use every core); threads made
            // from here on inherit the mask.
            let pid = std::process::id().to_string();
            let status = std::process::Command::new("taskset")
                .args(["-a", "-p", "-c", cpus, &pid])
                .stdout(std::process::Stdio::null())
                .status()
                .context("cannot run taskset")?;
            if !status.success() {
                bail!("taskset -c {cpus} failed for the driver (--driver-cpus)");
            }
        }
        let runtime = match common.driver_threads {
            0 => bail!("--driver-threads must be at least 1"),
            1 => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            n => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .enable_all()
                .build()?,
        };
        Ok(Self {
            name,
            binaries,
            twin_flags: vec![
                "--capacity-bytes".into(),
                capacity_bytes.to_string(),
                "--shards".into(),
                common.shards.to_string(),
            ],
            out,
            runtime,
            driver_threads: common.driver_threads,
            quiet_wait: Duration::from_secs(common.quiet_wait_secs),
            server_cpus: common.server_cpus.clone(),
            driver_cpus: common.driver_cpus.clone(),
            ready_client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        })
    }

    /// Runs `drive` against a fresh twin per round, in A/B/B/A order.
    fn ab_ba<R>(
        &self,
        mut drive: impl FnMut(&Twin, &tokio::runtime::Runtime) -> anyhow::Result<(R, ProcessStats)>,
    ) -> anyhow::Result<Vec<Run<R>>> {
        let mut runs = Vec::new();
        for (i, backend) in ORDER.into_iter().enumerate() {
            let round = i + 1;
            let binary = match backend {
                "go" => &self.binaries.go,
                _ => &self.binaries.rust,
            };
            procstat::wait_for_quiet(self.quiet_wait)?;
            let log = self.out.join(format!("{round}-{backend}.log"));
            let twin = Twin::spawn_on(
                backend,
                binary,
                &self.twin_flags,
                &log,
                self.server_cpus.as_deref(),
            )?;
            twin.wait_ready(&self.ready_client, Duration::from_secs(30))?;
            eprintln!(
                "{} run {round}/4: {backend} twin on {}",
                self.name, twin.addr
            );
            let (result, process) =
                drive(&twin, &self.runtime).with_context(|| format!("{backend} run {round}"))?;
            // Let the dropped connections' tasks run to completion, so the
            // twin sees them close before it is asked to stop.
            self.runtime
                .block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
            let clean_exit = twin.stop(Duration::from_secs(30))?.success();
            runs.push(Run {
                backend,
                round,
                process,
                clean_exit,
                result,
            });
        }
        Ok(runs)
    }

    /// Writes results.json and report.html, prints the table, and fails
    /// if a backend erred.
    fn finish<C: Serialize, R: Measured>(
        &self,
        config: &C,
        shape: &Shape,
        runs: &[Run<R>],
    ) -> anyhow::Result<()> {
        let rounds: Vec<Round> = runs
            .iter()
            .map(|r| {
                let load = r.result.load();
                let e = r.result.errors();
                let mut extra = r.result.extra(&r.process);
                extra.push(ExtraMetric::new(
                    "driver_cpu_seconds",
                    r.process.driver_cpu_seconds,
                    "seconds",
                    None,
                    "this process's (the load driver's) CPU time in the measured part: near 1 s per second, the driver was saturated",
                ));
                extra.push(ExtraMetric::new(
                    "other_cpu_seconds",
                    r.process.other_cpu_seconds,
                    "seconds",
                    None,
                    "CPU time of every other process on the machine in the measured part: noise",
                ));
                Round {
                    backend: r.backend.to_owned(),
                    language: r.backend.to_owned(),
                    role: if r.backend == "go" {
                        Role::Baseline
                    } else {
                        Role::Candidate
                    },
                    latency: load.histogram.clone().unwrap_or_else(latency_histogram),
                    measured_secs: load.measured_secs,
                    errors: e.status_total() + e.transport_total(),
                    late: load.late_slots,
                    cpu_seconds: Some(r.process.cpu_seconds),
                    peak_rss_bytes: Some(r.process.peak_rss_bytes),
                    extra,
                }
            })
            .collect();
        let failures: Vec<String> = runs
            .iter()
            .filter(|r| !r.result.errors().is_empty() || !r.clean_exit)
            .map(|r| {
                let e = r.result.errors();
                format!(
                    "{} run {}: {} HTTP errors {:?}, {} transport errors {:?}, clean exit: {}",
                    r.backend,
                    r.round,
                    e.status_total(),
                    e.status,
                    e.transport_total(),
                    e.transport,
                    r.clean_exit
                )
            })
            .collect();
        let mut notes = setup_notes(self, config);
        notes.extend(failures.iter().cloned());
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        let mut results = RunResults::new(command, Mode::Direct);
        results.scenarios.push(ScenarioResult {
            scenario: shape.scenario.to_owned(),
            unit: shape.unit.to_owned(),
            target_rate_per_sec: shape.target_rate_per_sec,
            duration_secs: shape.duration_secs,
            warmup_secs: shape.warmup_secs,
            backends: rounds::fold(
                &rounds,
                "/proc: the twin's CPU time and VmHWM, read before and after each run",
            ),
            comparison: None,
            notes,
            routes: Vec::new(),
            budgets: None,
            capacity: None,
            noise: None,
        });
        crate::experiment::write(&results, &self.out)?;
        if !failures.is_empty() {
            bail!(
                "a backend errored; logs in {}\n{}",
                self.out.display(),
                failures.join("\n")
            );
        }
        Ok(())
    }
}

/// `/proc` readings of the twin and of this process (the driver).
struct Sample {
    server: Usage,
    driver: Usage,
    machine_busy_seconds: f64,
}

impl Sample {
    fn take(twin: &Twin) -> anyhow::Result<Self> {
        Ok(Self {
            server: twin.usage()?,
            driver: procstat::read(std::process::id())?,
            machine_busy_seconds: procstat::machine_busy_seconds()?,
        })
    }

    fn until(self, twin: &Twin) -> anyhow::Result<ProcessStats> {
        let now = Self::take(twin)?;
        let server = now.server.cpu_seconds - self.server.cpu_seconds;
        let driver = now.driver.cpu_seconds - self.driver.cpu_seconds;
        let machine = now.machine_busy_seconds - self.machine_busy_seconds;
        Ok(ProcessStats {
            cpu_seconds: server,
            driver_cpu_seconds: driver,
            other_cpu_seconds: (machine - server - driver).max(0.0),
            peak_rss_bytes: now.server.peak_rss_bytes,
            end_rss_bytes: now.server.rss_bytes,
        })
    }
}
