//! `parallax run`: the side-by-side job.
//!
//! For each scenario (ingest, cache, fan-out) it builds the Go reference and
//! the Rust twin, starts them as child processes (and Kafka for ingest,
//! reusing a running one), drives open-model load from goose and prints one
//! side-by-side table per service; it writes `results.json`
//! (`parallax.results/v1`, see docs/results-schema.md) and `report.html`.
//!
//! Modes:
//! - **shadow** (default): `parallax proxy` in front, Go primary and Rust
//!   shadow; every request is mirrored and compared; both backends' latency
//!   is measured by the proxy the same way, and ingest's Kafka records are
//!   joined on `event-id` and compared.
//! - **direct** (`--direct`): each backend alone in turn, A, B, B, A (each
//!   half the duration) so drift cancels; latency from the load generator,
//!   coordinated-omission corrected. The same batches go to both ingest
//!   twins, so their Kafka records are still compared.
//! - **A/A** (`--aa`): Go against Go (shadow topology, or direct with
//!   `--direct`): what the harness itself reports when nothing differs.
//!
//! The fan-out scenario holds WebSocket subscribers in worker processes and
//! publishes notifications at a rate to each twin in turn (its delivery
//! latency is end to end: receive time minus the publisher's send stamp).
//!
//! Everything it starts it stops: child processes are killed on drop, and
//! the Kafka it started is stopped at the end unless `--keep-kafka`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;

use parallax_kafka_diff::{Differ, DifferConfig, Start, Stop};
use parallax_loadgen::ingest::{IngestConfig, IngestWorkload};
use parallax_loadgen::open::{OpenReport, Workload};
use parallax_proxy::config::{CompareConfig, RouteConfig};
use parallax_report::synthetic::empty_histogram;
use parallax_report::{
    histogram, BackendResult, Comparison, KafkaComparison, LatencySummary, Mode, Role, RunResults,
    ScenarioResult, Window,
};

use parallax_harness::capacity::RateSpec;

use crate::kafka;
use crate::load::{self, Phase};
use crate::procstat::Usage;
use crate::stack::{self, ProxyProcess};
use crate::twin::{self, Binaries, Twin};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Event ingestion: protobuf batches over HTTP, published to Kafka.
    Ingest,
    /// Session cache: Zipf-keyed reads and writes.
    Cache,
    /// Notification fan-out: WebSocket subscribers, broadcast latency.
    Fanout,
    /// All three, one after the other.
    All,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Experiment files to run (docs/experiments.md): your own services,
    /// traffic, compare rules and budgets. Without any, the built-in twin
    /// pairs run.
    #[arg(value_name = "EXPERIMENT.toml")]
    pub experiments: Vec<PathBuf>,
    /// Which twin pair(s) to compare (without experiment files).
    #[arg(long, value_enum, default_value = "all")]
    pub scenario: Scenario,
    /// Measured seconds per scenario (split A, B, B, A with --direct).
    /// Default 15 for the built-in pairs; an experiment file's `load.duration_secs`.
    #[arg(long)]
    pub duration_secs: Option<f64>,
    /// Seconds of unmeasured load first.
    /// Default 3 for the built-in pairs; an experiment file's `load.warmup_secs`.
    #[arg(long)]
    pub warmup_secs: Option<f64>,
    /// Rate: events/s for ingest (default 10000), ops/s for cache (2000),
    /// notifications/s for fan-out (20). Applies to every scenario run. A
    /// ladder `START..ENDxFACTOR` (`2000..64000x1.5`) climbs it, each
    /// backend alone, and reports each one's capacity at `--slo`
    /// (experiment files and `--scenario cache`).
    #[arg(long, value_name = "RATE | START..ENDxFACTOR")]
    pub rate: Option<RateSpec>,
    /// Capacity, interleaving, accounting and noise.
    #[command(flatten)]
    pub verdict: crate::verdict::VerdictArgs,
    /// Events per ingest batch.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// WebSocket subscribers per fan-out twin.
    #[arg(long, default_value_t = 2000)]
    pub clients: usize,
    /// goose users (most requests in flight).
    #[arg(long, default_value_t = 32)]
    pub users: usize,
    /// Extra flags for the candidate twin (e.g. a fault injection when
    /// testing the gate), one string split on spaces.
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    pub candidate_flags: String,
    /// Load each backend alone in turn (A, B, B, A) instead of mirroring.
    #[arg(long)]
    pub direct: bool,
    /// Go against Go: the harness's own noise.
    #[arg(long)]
    pub aa: bool,
    /// Use this Kafka instead of starting the local one.
    #[arg(long)]
    pub kafka_brokers: Option<String>,
    /// Leave the local Kafka running if this run started it.
    #[arg(long)]
    pub keep_kafka: bool,
    /// Where results.json, report.html and the logs go.
    #[arg(long, default_value = "target/parallax-run")]
    pub out: PathBuf,
    /// With experiment files: check them and show what would run (the
    /// backends' commands, a few rendered requests) without starting
    /// anything.
    #[arg(long)]
    pub check: bool,
}

impl RunArgs {
    /// Whether a capacity search or ladder was asked for.
    pub fn capacity(&self) -> bool {
        self.verdict.find_capacity || matches!(self.rate, Some(RateSpec::Ladder(_)))
    }

    /// The one rate given (`None`: none, or a ladder).
    pub fn fixed_rate(&self) -> Option<f64> {
        match self.rate {
            Some(RateSpec::Fixed(r)) => Some(r),
            _ => None,
        }
    }

    fn duration(&self) -> f64 {
        self.duration_secs.unwrap_or(15.0)
    }

    fn warmup(&self) -> f64 {
        self.warmup_secs.unwrap_or(3.0)
    }

    fn mode(&self) -> Mode {
        match (self.aa, self.direct || self.capacity()) {
            (true, _) => Mode::Aa,
            (false, true) => Mode::Direct,
            (false, false) => Mode::Shadow,
        }
    }

    fn scenarios(&self) -> Vec<Scenario> {
        match self.scenario {
            Scenario::All => vec![Scenario::Ingest, Scenario::Cache, Scenario::Fanout],
            one => vec![one],
        }
    }
}

/// One backend of a scenario: which binary plays it and how it is labelled.
#[derive(Debug, Clone)]
struct Side {
    name: &'static str,
    /// Units (events) per request, for rates in the scenario's unit.
    units_per_request: f64,
    /// `--candidate-flags` for the candidate.
    extra_flags: Vec<String>,
    language: &'static str,
    role: Role,
    binary: PathBuf,
}

fn sides(args: &RunArgs, binaries: &Binaries, units_per_request: f64) -> [Side; 2] {
    let aa = args.aa;
    let side = |name, language, role: Role, binary: &PathBuf| Side {
        name,
        units_per_request,
        extra_flags: match role {
            Role::Candidate => args
                .candidate_flags
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            Role::Baseline => Vec::new(),
        },
        language,
        role,
        binary: binary.clone(),
    };
    if aa {
        [
            side("go-a", "go", Role::Baseline, &binaries.go),
            side("go-b", "go", Role::Candidate, &binaries.go),
        ]
    } else {
        [
            side("go", "go", Role::Baseline, &binaries.go),
            side("rust", "rust", Role::Candidate, &binaries.rust),
        ]
    }
}

pub fn run(root: &Path, args: &RunArgs) -> anyhow::Result<()> {
    if args.duration() < 2.0 {
        bail!("--duration-secs must be at least 2");
    }
    // Ctrl-C reaches the whole process group: the twins, the proxy and the
    // workers stop themselves. This process must not die with them: it
    // stops the load (goose's own handler would exit the process on a
    // second signal, leaving a Kafka this run started) and unwinds, so
    // every child is reaped and the Kafka it started is stopped.
    ctrlc::set_handler(|| {
        eprintln!("\ninterrupted: stopping the load, the twins and the proxy");
        parallax_loadgen::open::interrupt();
    })
    .context("cannot install the Ctrl-C handler")?;
    let out = root.join(&args.out);
    std::fs::create_dir_all(&out)?;
    let mode = args.mode();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut results = RunResults::new(command, mode);
    let scenarios = args.scenarios();
    if args.capacity() && scenarios != [Scenario::Cache] {
        bail!("--find-capacity / --rate START..ENDxFACTOR: of the built-in pairs only the cache is an experiment file yet; give --scenario cache, or experiment files");
    }
    args.verdict.check()?;

    let mut started_kafka = false;
    let brokers = if scenarios.contains(&Scenario::Ingest) {
        Some(match &args.kafka_brokers {
            Some(b) => b.clone(),
            None => {
                started_kafka = !kafka::running(root);
                kafka::up(root)?
            }
        })
    } else {
        None
    };
    let outcome = (|| -> anyhow::Result<()> {
        for scenario in scenarios {
            let result = match scenario {
                Scenario::Ingest => {
                    ingest(root, args, brokers.as_deref().unwrap_or_default(), &out)
                }
                Scenario::Cache => cache(root, args, &out, mode),
                Scenario::Fanout => fanout(root, args, &out),
                Scenario::All => unreachable!("expanded above"),
            }
            .with_context(|| format!("scenario {scenario:?}"))?;
            results.scenarios.push(result);
        }
        Ok(())
    })();
    if started_kafka && !args.keep_kafka {
        eprintln!("stopping the Kafka this run started (--keep-kafka keeps it)");
        let _ = kafka::down(root);
    }
    outcome?;

    args.verdict.attach_noise(&mut results)?;
    let json = out.join("results.json");
    results.save(&json)?;
    let html = out.join("report.html");
    std::fs::write(&html, parallax_report::html::render(&results))?;
    println!("{}", parallax_report::table::render(&results));
    println!("results: {}\nreport:  {}", json.display(), html.display());
    println!("judge it: parallax gate {}", json.display());
    Ok(())
}

fn ingest(
    root: &Path,
    args: &RunArgs,
    brokers: &str,
    out: &Path,
) -> anyhow::Result<ScenarioResult> {
    let dir = stack::scenario_dir(out, "ingest")?;
    let binaries = twin::build(root, "ingest")?;
    let run_id = format!("run{}", load::unix_millis());
    let events_per_sec = args.fixed_rate().unwrap_or(10_000.0);
    let workload = Arc::new(IngestWorkload::new(&IngestConfig {
        batch_size: args.batch_size,
        tenants: 1000,
        tenant_skew: 1.1,
        payload_bytes: 64,
        run_id: run_id.clone(),
        seed: 1,
    })?);
    let topic = |side: &Side| format!("parallax-{run_id}-{}", side.name);
    let flags = |side: &Side| {
        vec![
            "--kafka-brokers".to_owned(),
            brokers.to_owned(),
            "--topic".to_owned(),
            topic(side),
        ]
    };
    let plan = Plan {
        service: "ingest",
        unit: "events",
        target: events_per_sec,
        rate: events_per_sec / args.batch_size as f64,
        routes: vec![RouteConfig {
            template: "/v1/events".into(),
            compare: Some(CompareConfig {
                headers: vec!["content-type".into()],
                protobuf_message: Some("parallax.ingest.v1.IngestResponse".into()),
                ..CompareConfig::default()
            }),
        }],
    };
    let sides = sides(args, &binaries, args.batch_size as f64);
    let mut result = http_scenario(args, &plan, &sides, &flags, workload, &dir)?;

    // The Kafka side effect: both topics read from the beginning and joined
    // on event-id by parallax-kafka-diff (partition, key, headers, decoded
    // payload), until neither has had a record for 3 s.
    eprintln!("ingest: joining both topics on event-id (parallax-kafka-diff)");
    let mut config = DifferConfig::new(brokers, &topic(&sides[0]), &topic(&sides[1]));
    config.start = Start::Beginning;
    let runtime = load::runtime()?;
    let diff = runtime.block_on(async {
        let differ = Differ::connect(config).await?;
        Ok::<_, parallax_kafka_diff::Error>(
            differ
                .run(Stop::Idle(Duration::from_secs(3)), std::future::pending())
                .await,
        )
    })?;
    let kafka = KafkaComparison {
        matched: diff.matched,
        missing_in_shadow: diff.missing_in_shadow,
        extra_in_shadow: diff.extra_in_shadow,
        different: diff.different,
    };
    result.notes.push(format!(
        "Kafka: {} records from {}, {} from {} (warm-up included), joined on event-id",
        diff.consumed_primary, sides[0].name, diff.consumed_shadow, sides[1].name
    ));
    result
        .comparison
        .get_or_insert_with(Comparison::default)
        .kafka = Some(kafka);
    Ok(result)
}

/// The session-cache pair: `experiments/cache.toml`, run by the harness's
/// runner like any experiment file.
fn cache(root: &Path, args: &RunArgs, out: &Path, mode: Mode) -> anyhow::Result<ScenarioResult> {
    use parallax_harness::experiment::{Experiment, ModeName};
    use parallax_harness::runner::{self, RunOptions};
    let experiment = Experiment::load(&root.join("experiments/cache.toml"))?;
    let mut options = RunOptions {
        mode: Some(match mode {
            Mode::Shadow => ModeName::Shadow,
            Mode::Direct => ModeName::Direct,
            Mode::Aa => ModeName::Aa,
        }),
        duration_secs: Some(args.duration()),
        warmup_secs: Some(args.warmup()),
        rate: args.fixed_rate(),
        candidate_args: args
            .candidate_flags
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        out: stack::scenario_dir(out, "cache")?,
        proxy_exe: crate::workspace::self_exe()?,
        aa_direct: args.aa && args.direct,
        ..RunOptions::default()
    };
    args.verdict
        .apply(args.rate, experiment.load.rate, &mut options);
    let mut scenarios = runner::run(&experiment, &options)?;
    anyhow::ensure!(scenarios.len() == 1, "experiments/cache.toml has one step");
    Ok(scenarios.remove(0))
}

/// What an HTTP scenario sends and how the proxy is set up for it.
struct Plan {
    service: &'static str,
    unit: &'static str,
    /// In units (events/s for ingest).
    target: f64,
    /// Requests per second.
    rate: f64,
    /// The proxy's routes and their compare rules.
    routes: Vec<RouteConfig>,
}

fn http_scenario<W: Workload>(
    args: &RunArgs,
    plan: &Plan,
    sides: &[Side; 2],
    flags: &dyn Fn(&Side) -> Vec<String>,
    workload: Arc<W>,
    dir: &Path,
) -> anyhow::Result<ScenarioResult> {
    let mut result = ScenarioResult {
        scenario: plan.service.to_owned(),
        unit: plan.unit.to_owned(),
        target_rate_per_sec: plan.target,
        duration_secs: args.duration(),
        warmup_secs: args.warmup(),
        backends: Vec::new(),
        comparison: None,
        notes: Vec::new(),
        routes: Vec::new(),
        budgets: None,
        capacity: None,
        noise: None,
    };
    if args.direct {
        result.backends = direct(args, plan, sides, flags, workload, dir)?;
        result.notes.push(
            "direct: each backend alone, A B B A; latency from the load generator, from each request's intended start"
                .into(),
        );
    } else {
        let (backends, comparison, notes) = shadow(args, plan, sides, flags, workload, dir)?;
        result.backends = backends;
        result.comparison = Some(comparison);
        result.notes.extend(notes);
    }
    Ok(result)
}

fn start_twin(side: &Side, flags: &[String], dir: &Path) -> anyhow::Result<Twin> {
    let mut flags = flags.to_vec();
    flags.extend(side.extra_flags.iter().cloned());
    let twin = Twin::spawn(
        side.name,
        &side.binary,
        &flags,
        &dir.join(format!("{}.log", side.name)),
    )?;
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    twin.wait_ready(&http, Duration::from_secs(60))?;
    Ok(twin)
}

/// Shadow (or A/A) mode: both backends behind the proxy at once.
fn shadow<W: Workload>(
    args: &RunArgs,
    plan: &Plan,
    sides: &[Side; 2],
    flags: &dyn Fn(&Side) -> Vec<String>,
    workload: Arc<W>,
    dir: &Path,
) -> anyhow::Result<(Vec<BackendResult>, Comparison, Vec<String>)> {
    let primary = start_twin(&sides[0], &flags(&sides[0]), dir)?;
    let shadow = start_twin(&sides[1], &flags(&sides[1]), dir)?;
    let proxy = ProxyProcess::start(plan.service, primary.addr, shadow.addr, &plan.routes, dir)?;
    eprintln!(
        "{}: {} primary on {}, {} shadow on {}, proxy on {}",
        plan.service, sides[0].name, primary.addr, sides[1].name, shadow.addr, proxy.listen
    );
    let runtime = load::runtime()?;
    let mut phase = Phase {
        first_slot: 1 << 41,
        ..Phase::steady(
            proxy.url(),
            plan.rate,
            load::secs(args.warmup().max(0.5))?,
            args.users,
        )
    };
    eprintln!("{}: warm-up, {:.1} requests/s", plan.service, plan.rate);
    let warm = load::drive(&runtime, Arc::clone(&workload), &phase)?;
    settle();

    let before = Snapshot::take(&proxy, plan.service, [&primary, &shadow])?;
    let proxy_before = proxy.usage()?;
    let kinds_before = proxy.sampled_difference_kinds().unwrap_or_default();
    phase.duration = load::secs(args.duration())?;
    phase.first_slot = 0;
    phase.html = Some(dir.join("goose.html"));
    phase.progress = true;
    eprintln!(
        "{}: measuring {:?} through the proxy",
        plan.service, phase.duration
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (client, snapshots) = std::thread::scope(|scope| {
        let poller = scope.spawn(|| poll_histograms(&proxy, plan.service, &stop));
        let client = load::drive(&runtime, workload, &phase);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (client, poller.join().expect("the poller does not panic"))
    });
    let client = client?;
    settle();
    let after = Snapshot::take(&proxy, plan.service, [&primary, &shadow])?;
    let proxy_after = proxy.usage()?;
    let counters = after.counters.since(&before.counters);
    let kinds: BTreeMap<String, u64> = proxy
        .sampled_difference_kinds()
        .unwrap_or_default()
        .into_iter()
        .map(|(kind, n)| {
            let earlier = kinds_before.get(&kind).copied().unwrap_or(0);
            (kind, n.saturating_sub(earlier))
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    proxy.stop();
    let clean = [
        primary.stop(Duration::from_secs(20))?.success(),
        shadow.stop(Duration::from_secs(20))?.success(),
    ];

    let mut backends = Vec::new();
    for (i, (side, backend)) in sides.iter().zip(["primary", "shadow"]).enumerate() {
        let h = after.histogram(backend)?.clone();
        let mut h = subtract(h, before.histogram(backend)?)?;
        if h.is_empty() {
            h = empty_histogram();
        }
        let timeline = timeline_from(&snapshots, backend);
        let (errors, late) = if i == 0 {
            (client.errors, client.late)
        } else {
            (
                counters.mirror("shadow_error") + counters.mirror("shadow_timeout"),
                0,
            )
        };
        backends.push(backend_result(
            side,
            &h,
            client.measured_secs,
            errors,
            late,
            timeline,
            &before.usage[i],
            &after.usage[i],
        ));
    }
    let matched = counters.comparison("match");
    let mismatched = counters.comparison("mismatch");
    let noise = counters.comparison("noise");
    let comparison = Comparison {
        compared: matched + mismatched + noise,
        matched,
        mismatched,
        noise,
        dropped: counters.mirror("dropped_queue_full"),
        classes: kinds,
        kafka: None,
        differences: Vec::new(),
        samples: Vec::new(),
    };
    let s = LatencySummary::from_histogram(&client.latency_us);
    let mut notes = vec![
        format!(
            "shadow: {} primary, {} shadow, every request mirrored by parallax proxy; backend latency as the proxy measured it",
            sides[0].name, sides[1].name
        ),
        format!(
            "client through the proxy (from intended start): {:.1} req/s of {:.1}, p50 {} µs, p99 {} µs, {} late, {} errors; warm-up {} requests",
            client.achieved_rate(),
            plan.rate,
            s.p50_us,
            s.p99_us,
            client.late,
            client.errors,
            warm.requests
        ),
        format!(
            "the proxy used {:.2} CPU-seconds in the measured phase, peak RSS {} MiB",
            proxy_after.cpu_seconds - proxy_before.cpu_seconds,
            proxy_after.peak_rss_bytes >> 20
        ),
        "mismatch classes are counted over the samples the proxy kept (the last few per route)".into(),
    ];
    if !clean.iter().all(|c| *c) {
        notes.push("a backend did not exit cleanly on SIGTERM; see its log".into());
    }
    Ok((backends, comparison, notes))
}

/// Direct mode: each backend alone, A B B A.
fn direct<W: Workload>(
    args: &RunArgs,
    plan: &Plan,
    sides: &[Side; 2],
    flags: &dyn Fn(&Side) -> Vec<String>,
    workload: Arc<W>,
    dir: &Path,
) -> anyhow::Result<Vec<BackendResult>> {
    let runtime = load::runtime()?;
    let half = load::secs(args.duration() / 2.0)?;
    let twins = [
        start_twin(&sides[0], &flags(&sides[0]), dir)?,
        start_twin(&sides[1], &flags(&sides[1]), dir)?,
    ];
    let mut reports: [Vec<OpenReport>; 2] = [Vec::new(), Vec::new()];
    let mut cpu = [0.0f64; 2];
    // The same slots (hence the same event ids) go to both backends.
    let half_slots = (plan.rate * half.as_secs_f64()).ceil() as u64;
    for (round, (i, first_slot)) in [(0, 0), (1, 0), (1, half_slots), (0, half_slots)]
        .into_iter()
        .enumerate()
    {
        let twin = &twins[i];
        eprintln!(
            "{}: round {} of 4: {} alone",
            plan.service,
            round + 1,
            sides[i].name
        );
        let phase = Phase {
            warmup: load::secs(args.warmup() / 2.0)?,
            first_slot,
            html: Some(dir.join(format!("goose-{}-{}.html", sides[i].name, round + 1))),
            progress: true,
            ..Phase::steady(twin.url(""), plan.rate, half, args.users)
        };
        let before = twin.usage()?.cpu_seconds;
        reports[i].push(load::drive(&runtime, Arc::clone(&workload), &phase)?);
        cpu[i] += twin.usage()?.cpu_seconds - before;
    }
    let mut backends = Vec::new();
    for (i, twin) in twins.into_iter().enumerate() {
        let usage = twin.usage()?;
        let mut h = empty_histogram();
        let mut timeline = Vec::new();
        let (mut errors, mut late, mut secs) = (0, 0, 0.0);
        for r in &reports[i] {
            h.add(&r.latency_us)?;
            timeline.extend(load::timeline(r, secs));
            errors += r.errors;
            late += r.late;
            secs += r.measured_secs;
        }
        let zero = Usage::default();
        let measured = Usage {
            cpu_seconds: cpu[i],
            ..usage
        };
        backends.push(backend_result(
            &sides[i], &h, secs, errors, late, timeline, &zero, &measured,
        ));
        twin.stop(Duration::from_secs(20))?;
    }
    Ok(backends)
}

/// Proxy state and backend usage at one moment.
struct Snapshot {
    histograms: BTreeMap<String, Histogram<u64>>,
    counters: stack::Counters,
    usage: [Usage; 2],
}

impl Snapshot {
    fn take(proxy: &ProxyProcess, service: &str, twins: [&Twin; 2]) -> anyhow::Result<Self> {
        Ok(Self {
            histograms: proxy.histograms(service)?,
            counters: proxy.counters()?,
            usage: [twins[0].usage()?, twins[1].usage()?],
        })
    }

    fn histogram(&self, backend: &str) -> anyhow::Result<&Histogram<u64>> {
        self.histograms
            .get(backend)
            .with_context(|| format!("the proxy reports no {backend} histogram"))
    }
}

/// Lets mirrored requests still in flight land before a snapshot.
fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}

/// `later − earlier`, bucket by bucket (the proxy's windows only grow
/// during a run shorter than one window slot).
fn subtract(mut later: Histogram<u64>, earlier: &Histogram<u64>) -> anyhow::Result<Histogram<u64>> {
    later
        .subtract(earlier)
        .map_err(|e| anyhow::anyhow!("histograms do not subtract: {e:?}"))?;
    Ok(later)
}

/// Snapshots of the proxy's histograms once a second while `stop` is unset.
fn poll_histograms(
    proxy: &ProxyProcess,
    service: &str,
    stop: &std::sync::atomic::AtomicBool,
) -> Vec<BTreeMap<String, Histogram<u64>>> {
    let mut snapshots = Vec::new();
    let mut next = std::time::Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if let Ok(h) = proxy.histograms(service) {
            snapshots.push(h);
        }
        next += Duration::from_secs(1);
        while std::time::Instant::now() < next && !stop.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    snapshots
}

/// Per-second windows from consecutive snapshots of one backend.
fn timeline_from(snapshots: &[BTreeMap<String, Histogram<u64>>], backend: &str) -> Vec<Window> {
    snapshots
        .windows(2)
        .enumerate()
        .filter_map(|(t, pair)| {
            let (a, b) = (pair[0].get(backend)?, pair[1].get(backend)?);
            let h = subtract(b.clone(), a).ok()?;
            Some(Window::from_histogram(t as f64, &h, 0))
        })
        .filter(|w| w.requests > 0)
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn backend_result(
    side: &Side,
    latency: &Histogram<u64>,
    measured_secs: f64,
    errors: u64,
    late: u64,
    timeline: Vec<Window>,
    before: &Usage,
    after: &Usage,
) -> BackendResult {
    let mut h = empty_histogram();
    let _ = h.add(latency);
    BackendResult {
        name: side.name.to_owned(),
        language: side.language.to_owned(),
        role: side.role,
        achieved_rate_per_sec: if measured_secs > 0.0 {
            h.len() as f64 * side.units_per_request / measured_secs
        } else {
            0.0
        },
        requests: h.len(),
        errors,
        late,
        latency: LatencySummary::from_histogram(&h),
        histogram: histogram::encode(&h),
        timeline,
        cpu_seconds: Some(after.cpu_seconds - before.cpu_seconds),
        peak_rss_bytes: Some(after.peak_rss_bytes),
        accounting: None,
        usage: Vec::new(),
    }
}

/// Fan-out: each twin in turn holds `--clients` subscribers; notifications
/// are published at the rate; delivery latency per twin.
fn fanout(root: &Path, args: &RunArgs, out: &Path) -> anyhow::Result<ScenarioResult> {
    let dir = stack::scenario_dir(out, "fanout")?;
    let binaries = twin::build(root, "fanout")?;
    let rate = args.fixed_rate().unwrap_or(20.0);
    let topics = vec!["run".to_owned()];
    let sides = sides(args, &binaries, 1.0);
    let runtime = load::runtime()?;
    let mut backends = Vec::new();
    let mut notes = vec![format!(
        "each twin in turn: {} WebSocket subscribers in worker processes from 127.0.0.2-5, {rate}/s notifications; latency = receive − published_at stamped by the publisher when sending",
        args.clients
    )];
    for side in &sides {
        let twin = start_twin(side, &[], &dir)?;
        let mut fleet =
            crate::fanout::Fleet::connect(twin.addr, args.clients, 10_000, &topics, 4, None)?;
        eprintln!(
            "fanout: {} holds {} subscribers ({} failed)",
            side.name,
            fleet.connected(),
            fleet.failed()
        );
        let phase =
            |duration: f64, first_slot: u64, html: Option<PathBuf>| -> anyhow::Result<Phase> {
                let progress = html.is_some();
                Ok(Phase {
                    first_slot,
                    html,
                    progress,
                    ..Phase::steady(twin.url(""), rate, load::secs(duration)?, 8)
                })
            };
        let workload = Arc::new(load::NotifyWorkload {
            topics: topics.clone(),
        });
        load::drive(
            &runtime,
            Arc::clone(&workload),
            &phase(args.warmup().max(0.5), 1 << 41, None)?,
        )?;
        std::thread::sleep(Duration::from_secs(1));
        fleet.reset()?;
        let before = twin.usage()?;
        let report = load::drive(
            &runtime,
            workload,
            &phase(
                args.duration(),
                0,
                Some(dir.join(format!("goose-{}.html", side.name))),
            )?,
        )?;
        let expected = load::expected_deliveries(&fleet, &topics, report.requests);
        let latency = load::await_deliveries(&mut fleet, expected, Duration::from_secs(30))?;
        let after = twin.usage()?;
        notes.push(format!(
            "{}: {} connected, {} failed; {} of {expected} deliveries; {} publishes failed",
            side.name,
            fleet.connected(),
            fleet.failed(),
            latency.len(),
            report.errors
        ));
        let missing = expected.saturating_sub(latency.len());
        drop(fleet);
        backends.push(BackendResult {
            errors: report.errors + missing,
            ..backend_result(
                side,
                &latency,
                report.measured_secs,
                0,
                report.late,
                Vec::new(),
                &before,
                &after,
            )
        });
        twin.stop(Duration::from_secs(20))?;
    }
    let comparison = if args.direct {
        None
    } else {
        let (comparison, note) = mirrored_fanout(args, &sides, rate, &topics, &dir)?;
        notes.push(note);
        Some(comparison)
    };
    Ok(ScenarioResult {
        comparison,
        scenario: "fanout".into(),
        unit: "deliveries".into(),
        target_rate_per_sec: rate * args.clients as f64,
        duration_secs: args.duration(),
        warmup_secs: args.warmup(),
        backends,
        notes,
        routes: Vec::new(),
        budgets: None,
        capacity: None,
        noise: None,
    })
}

/// The fan-out's correctness half: subscribers connect through the proxy
/// (primary's frames to them, the shadow's compared message by message),
/// notifications are published through it (mirrored with the same id and
/// timestamp), and the proxy's frame counters become the comparison.
fn mirrored_fanout(
    args: &RunArgs,
    sides: &[Side; 2],
    rate: f64,
    topics: &[String],
    dir: &Path,
) -> anyhow::Result<(Comparison, String)> {
    let primary = start_twin(&sides[0], &[], dir)?;
    let shadow = start_twin(&sides[1], &[], dir)?;
    let proxy = ProxyProcess::start("fanout", primary.addr, shadow.addr, &[], dir)?;
    // Every proxied connection holds three descriptors in the proxy.
    let clients = args.clients.min(1000);
    let fleet = crate::fanout::Fleet::connect(proxy.listen, clients, 10_000, topics, 4, None)?;
    eprintln!(
        "fanout: {} subscribers through the proxy ({} primary, {} shadow)",
        fleet.connected(),
        sides[0].name,
        sides[1].name
    );
    std::thread::sleep(Duration::from_secs(1));
    let before = proxy.counters()?;
    let runtime = load::runtime()?;
    // One publisher: notifications published concurrently have no defined
    // order, and the two twins could then legitimately deliver them in
    // different orders (counted as reordered).
    let phase = Phase {
        first_slot: 1 << 42,
        ..Phase::steady(
            proxy.url(),
            rate,
            load::secs((args.duration() / 2.0).max(1.0))?,
            1,
        )
    };
    let workload = Arc::new(load::NotifyWorkload {
        topics: topics.to_vec(),
    });
    let report = load::drive(&runtime, workload, &phase)?;
    // Let the match window (2 s) close on the last messages.
    std::thread::sleep(Duration::from_secs(3));
    let frames = proxy.counters()?.since(&before);
    let kinds = proxy.sampled_difference_kinds().unwrap_or_default();
    drop(fleet);
    proxy.stop();
    primary.stop(Duration::from_secs(20))?;
    shadow.stop(Duration::from_secs(20))?;

    let results = ["missing", "extra", "different", "reordered"];
    let mut classes: BTreeMap<String, u64> = results
        .iter()
        .map(|r| (r.to_string(), frames.ws_frames(r)))
        .filter(|(_, n)| *n > 0)
        .collect();
    for (kind, n) in kinds {
        *classes.entry(kind).or_default() += n;
    }
    let matched = frames.ws_frames("matched");
    let mismatched: u64 = results.iter().map(|r| frames.ws_frames(r)).sum();
    let comparison = Comparison {
        compared: matched + mismatched,
        matched,
        mismatched,
        noise: 0,
        dropped: frames.ws_frames("overflow") + frames.ws_frames("unresolved"),
        classes,
        kafka: None,
        differences: Vec::new(),
        samples: Vec::new(),
    };
    let note = format!(
        "mirrored session: {clients} subscribers through parallax proxy, {} notifications published through it; frames paired by /id: {} matched, {} missing, {} extra, {} different, {} reordered",
        report.requests,
        matched,
        frames.ws_frames("missing"),
        frames.ws_frames("extra"),
        frames.ws_frames("different"),
        frames.ws_frames("reordered"),
    );
    Ok((comparison, note))
}
