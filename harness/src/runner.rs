//! Runs one experiment: builds and starts its backends (or finds them by
//! URL), drives its traffic on the open model, and returns one
//! [`ScenarioResult`] per rate step.
//!
//! - **shadow**: `parallax proxy` (a child process, configured from the
//!   real `parallax_proxy::Config` type) in front, the baseline as primary,
//!   the candidate as shadow, the secondary (if any) for noise. Latency per
//!   backend is the proxy's (its HDR histograms, read before and after the
//!   measured part and subtracted), per route from its Prometheus
//!   histograms; every mismatch goes to a JSON-lines log from which the
//!   mismatches by path are counted.
//! - **direct**: each backend alone, A B B A (each round half the step), the
//!   same slots (hence the same requests) to both; latency from the load
//!   generator, per route from the workload.
//! - **aa**: the baseline against a second instance of itself, in the
//!   shadow topology (or direct with `--direct`).
//!
//! A watcher thread polls every backend the runner started: when one dies,
//! the load is stopped and the run fails with the tail of its log. Every
//! child is stopped (its whole process group) when the run ends, however it
//! ends.

use std::collections::BTreeMap;
use std::io::{BufRead as _, Seek as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use parallax_compare::pointer::fold_indices;
use parallax_loadgen::open::{self, Offset, OpenConfig, OpenReport};
use parallax_loadgen::pacing::{latency_histogram, Schedule};
use parallax_report::{
    histogram as hdr, BackendCapacity, BackendResult, Capacity, CapacityProbe, Comparison,
    LatencySummary, Mode, PathDifference, Role, RouteBackend, RouteResult, ScenarioResult,
    UsageSample, Window,
};

use crate::capacity;
use crate::cgroup::{self, Cgroup};
use crate::child::{self, ChildProcess, ChildSpec, Readiness};
use crate::experiment::{Backend, Experiment, ModeName, Side, Step};
use crate::interleave;
use crate::procstat;
use crate::prom;
use crate::proxyconf::{self, ProxyService};
use crate::traffic::TemplateWorkload;

/// Warm-up slots are numbered from here, far from the measured ones.
pub const WARMUP_FIRST_SLOT: u64 = 1 << 40;

/// What the command line may change about an experiment.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides `load.mode`.
    pub mode: Option<ModeName>,
    /// Overrides the measured seconds (of every step).
    pub duration_secs: Option<f64>,
    /// Overrides `load.warmup_secs`.
    pub warmup_secs: Option<f64>,
    /// Overrides the rate (of every step).
    pub rate: Option<f64>,
    /// Appended to the candidate's command (a fault injection, a flag).
    pub candidate_args: Vec<String>,
    /// Where this experiment's logs, proxy config and goose reports go.
    pub out: PathBuf,
    /// The `parallax` binary, started as `parallax proxy` in shadow mode.
    pub proxy_exe: PathBuf,
    /// A/A in the direct topology (each instance alone, A B B A) instead
    /// of through the proxy.
    pub aa_direct: bool,
    /// Direct mode: the length of one block (default 2 s); the measured
    /// time is split into blocks alternating between the backends.
    pub block_secs: Option<f64>,
    /// Direct mode: the order of the blocks.
    pub order: interleave::Order,
    /// Look for each backend's capacity at an SLO instead of one rate
    /// (direct topology, interleaved).
    pub capacity: Option<capacity::Plan>,
    /// Account CPU and memory by `/proc` sampling even where cgroups are
    /// writable.
    pub no_cgroups: bool,
    /// Shadow mode: which copy the proxy sends first (`None`: alternate).
    pub mirror_order: Option<parallax_proxy::config::MirrorOrder>,
}

/// Default length of one direct-mode block.
pub const DEFAULT_BLOCK_SECS: f64 = 2.0;

/// The mode an experiment runs in under `options`.
pub fn mode(experiment: &Experiment, options: &RunOptions) -> ModeName {
    options.mode.unwrap_or(experiment.load.mode)
}

/// The results file's mode for a mode name (A/A is shadow or direct
/// topology, reported as `aa` either way).
pub fn report_mode(mode: ModeName) -> Mode {
    match mode {
        ModeName::Shadow => Mode::Shadow,
        ModeName::Direct => Mode::Direct,
        ModeName::Aa => Mode::Aa,
    }
}

/// Runs `experiment`; one result per rate step.
pub fn run(experiment: &Experiment, options: &RunOptions) -> anyhow::Result<Vec<ScenarioResult>> {
    let name = experiment.name();
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("cannot create {}", options.out.display()))?;
    let mode = mode(experiment, options);
    // A/A: the baseline's definition twice; direct topology only when asked
    // for by `--direct` on top of `--aa` (not expressible from the file).
    let sides: Vec<(Side, Backend, Role, String)> = {
        let base_label = experiment.baseline.label(Side::Baseline);
        let mut candidate = experiment.candidate.clone();
        let mut candidate_label = candidate.label(Side::Candidate);
        let mut baseline_label = base_label.clone();
        if mode == ModeName::Aa {
            candidate = experiment.baseline.clone();
            baseline_label = format!("{base_label}-a");
            candidate_label = format!("{base_label}-b");
        }
        if !options.candidate_args.is_empty() {
            if candidate.url.is_some() {
                bail!("--candidate-flags: the candidate is given by `url`, there is no command to add flags to");
            }
            candidate
                .command
                .extend(options.candidate_args.iter().cloned());
        }
        let mut sides = vec![
            (
                Side::Baseline,
                experiment.baseline.clone(),
                Role::Baseline,
                baseline_label,
            ),
            (Side::Candidate, candidate, Role::Candidate, candidate_label),
        ];
        if let (Some(s), ModeName::Shadow) = (&experiment.secondary, mode) {
            sides.push((
                Side::Secondary,
                s.clone(),
                Role::Baseline,
                s.label(Side::Secondary),
            ));
        }
        sides
    };

    // Builds first, each once, before anything is started.
    let mut built = Vec::new();
    for (side, backend, _, label) in &sides {
        if !backend.build.is_empty() && !built.contains(&backend.build) {
            build(experiment, *side, backend, label, &options.out)?;
            built.push(backend.build.clone());
        }
    }

    let vars = Vars {
        run: format!(
            "px{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        ),
        brokers: experiment
            .side_effects
            .kafka
            .as_ref()
            .map(|k| k.brokers())
            .unwrap_or_else(|| {
                std::env::var("PARALLAX_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
            }),
    };
    let accounting = Accounting::new(options);
    let mut running = Vec::new();
    for (side, backend, role, label) in &sides {
        eprintln!("{name}: starting {} ({label})", side.field());
        running.push(start(
            experiment,
            *side,
            backend,
            *role,
            label,
            &options.out,
            &vars,
            &accounting,
        )?);
    }
    let watcher = Watcher::start(&running);

    let routes: Vec<&str> = experiment
        .routes
        .iter()
        .map(|r| r.template.as_str())
        .collect();
    let (workload, grpc) = crate::grpc::workload(&name, experiment, &routes).map_err(|e| {
        anyhow::anyhow!("{}: {}: {}", experiment.origin.display(), e.field, e.reason)
    })?;
    let steps: Vec<Step> = experiment
        .steps()
        .into_iter()
        .map(|s| Step {
            rate: options.rate.unwrap_or(s.rate),
            duration_secs: options.duration_secs.unwrap_or(s.duration_secs),
        })
        .collect();
    let warmup = options.warmup_secs.unwrap_or(experiment.load.warmup_secs);
    let ctx = Ctx {
        experiment,
        name: &name,
        workload,
        grpc,
        http_addrs: running
            .iter()
            .map(|r| (r.url(), r.http_addr.clone()))
            .collect(),
        warmup,
        options,
        several_steps: steps.len() > 1,
        watcher: &watcher,
    };
    let outcome = match mode {
        _ if experiment.traffic.websocket.is_some() => ws_sessions(&ctx, &running, &steps, mode),
        _ if options.capacity.is_some() => capacity_search(&ctx, &running, &steps),
        ModeName::Aa if options.aa_direct => direct(&ctx, &running, &steps),
        ModeName::Shadow | ModeName::Aa => shadow(&ctx, &running, &steps),
        ModeName::Direct => direct(&ctx, &running, &steps),
    };
    watcher.stop();
    if let Some(dead) = watcher.dead() {
        let r = &running[dead];
        let tail = r
            .child
            .as_ref()
            .map(|c| c.log_tail(child::TAIL_LINES))
            .unwrap_or_default();
        let log = r.child.as_ref().map(|c| c.log().display().to_string());
        bail!(
            "{name}: the {} ({}) exited during the run; the last lines of {}:\n{tail}",
            r.side.field(),
            r.label,
            log.unwrap_or_default()
        );
    }
    let mut results = outcome?;
    for s in &mut results {
        s.notes.extend(accounting.notes(&running));
    }
    let kafka = experiment.side_effects.kafka.as_ref();
    if let (Some(_), ModeName::Aa) = (kafka, mode) {
        // Both copies are the baseline's definition and write its topic:
        // there is no second topic to join.
        for s in &mut results {
            s.notes.push(
                "A/A: both copies of the baseline write its Kafka topic; the Kafka join is skipped"
                    .into(),
            );
        }
    } else if let (Some(_), Some(_)) = (kafka, options.capacity) {
        // Each backend's probes ran at its own rates: its records are not
        // the other's, and a join would call them all missing and extra.
        for s in &mut results {
            s.notes.push(
                "capacity search: each backend was sent its own rates; the Kafka join is skipped"
                    .into(),
            );
        }
    } else if let Some(kafka) = kafka {
        let (comparison, note) = kafka_join(kafka, &vars, &options.out)?;
        if let Some(last) = results.last_mut() {
            last.comparison
                .get_or_insert_with(Comparison::default)
                .kafka = Some(comparison);
            last.notes.push(note);
        }
    }
    // A/A and capacity searches join nothing: the topics their backends
    // wrote (named after this run) go once the backends have stopped.
    let drop_topics = kafka.is_some() && (mode == ModeName::Aa || options.capacity.is_some());
    for r in running {
        if let Some(c) = r.child {
            let label = r.label.clone();
            if c.stop(Duration::from_secs(10)).is_none() {
                for s in &mut results {
                    s.notes.push(format!(
                        "{label} did not exit within 10 s of SIGTERM and was killed"
                    ));
                }
            }
        }
    }
    if drop_topics {
        let note = match crate::kafka_topics::delete_run_topics(
            &vars.brokers,
            &vars.run,
            Duration::from_secs(10),
        ) {
            Ok(gone) if gone.is_empty() => {
                format!("Kafka: no topic named with {} to remove", vars.run)
            }
            Ok(gone) => format!("Kafka: this run's topics removed: {}", gone.join(", ")),
            Err(e) => format!("Kafka: {e}"),
        };
        eprintln!("{name}: {note}");
        for s in &mut results {
            s.notes.push(note.clone());
        }
    }
    Ok(results)
}

/// `[traffic.websocket]`: sessions held while the request templates make
/// the backends publish ([`crate::wsrun`]).
fn ws_sessions(
    ctx: &Ctx,
    running: &[Running],
    steps: &[Step],
    mode: ModeName,
) -> anyhow::Result<Vec<ScenarioResult>> {
    let ws = ctx.experiment.traffic.websocket.as_ref();
    let ws = ws.context("no [traffic.websocket]")?;
    let backends: Vec<crate::wsrun::Backend> = running
        .iter()
        .take(2)
        .map(|r| crate::wsrun::Backend {
            label: &r.label,
            role: r.role,
            language: &r.language,
            addr: &r.addr,
            pid: r.child.as_ref().map(ChildProcess::pid),
            cpu: Box::new(move || r.cpu()),
            peak_rss: Box::new(move || r.peak_rss()),
            accounting: r.meter.describe(),
        })
        .collect();
    let alive = || ctx.check_alive(running);
    let env = crate::wsrun::Env {
        experiment: ctx.experiment,
        name: ctx.name,
        workload: Arc::clone(&ctx.workload),
        warmup: ctx.warmup,
        out: &ctx.options.out,
        exe: &ctx.options.proxy_exe,
        // `--aa --direct`: no mirrored session, as for HTTP.
        mode: if ctx.options.aa_direct {
            ModeName::Direct
        } else {
            mode
        },
        alive: &alive,
        block_secs: ctx.options.block_secs.unwrap_or(DEFAULT_BLOCK_SECS),
        order: ctx.options.order,
        capacity: ctx.options.capacity,
    };
    crate::wsrun::run(&env, &backends, ws, steps)
}

/// What every phase of one experiment shares.
struct Ctx<'a> {
    experiment: &'a Experiment,
    name: &'a str,
    workload: Arc<TemplateWorkload>,
    /// `[traffic.grpc]`: the calls sent instead of `workload`'s requests
    /// (whose templates they were compiled into).
    grpc: Option<Arc<crate::grpc::GrpcSource>>,
    /// Each backend's URL and `{http_listen}` address, for `[traffic.grpc]
    /// streams` (whose requests publish there).
    http_addrs: Vec<(String, Option<String>)>,
    warmup: f64,
    options: &'a RunOptions,
    several_steps: bool,
    watcher: &'a Watcher,
}

impl Ctx<'_> {
    fn scenario_name(&self, step: &Step) -> String {
        if self.several_steps {
            format!("{}@{}/s", self.name, step.rate)
        } else {
            self.name.to_owned()
        }
    }

    fn scenario(&self, step: &Step, backends: Vec<BackendResult>) -> ScenarioResult {
        let budgets = self.experiment.budgets;
        ScenarioResult {
            scenario: self.scenario_name(step),
            unit: self.experiment.unit.clone(),
            target_rate_per_sec: step.rate,
            duration_secs: step.duration_secs,
            warmup_secs: self.warmup,
            backends,
            comparison: None,
            notes: Vec::new(),
            routes: Vec::new(),
            budgets: (budgets != Default::default()).then_some(budgets),
            capacity: None,
            noise: None,
        }
    }

    /// Fails when a backend died (the watcher stopped the load).
    fn check_alive(&self, running: &[Running]) -> anyhow::Result<()> {
        if let Some(i) = self.watcher.dead() {
            bail!(
                "the {} ({}) exited",
                running[i].side.field(),
                running[i].label
            );
        }
        Ok(())
    }
}

/// Runs `build` in the backend's directory; its output goes to a log whose
/// tail is shown when it fails.
fn build(
    experiment: &Experiment,
    side: Side,
    backend: &Backend,
    label: &str,
    out: &Path,
) -> anyhow::Result<()> {
    let dir = backend_dir(experiment, backend);
    let log = out.join(format!("build-{label}.log"));
    eprintln!(
        "{}: building {} ({label}): {}",
        experiment.name(),
        side.field(),
        backend.build.join(" ")
    );
    let file = std::fs::File::create(&log)?;
    let status = std::process::Command::new(&backend.build[0])
        .args(&backend.build[1..])
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| {
            format!(
                "{}.build: cannot run {:?} in {}",
                side.field(),
                backend.build[0],
                dir.display()
            )
        })?;
    if !status.success() {
        bail!(
            "{}.build failed ({status}); the last lines of {}:\n{}",
            side.field(),
            log.display(),
            child::log_tail(&log, child::TAIL_LINES)
        );
    }
    Ok(())
}

fn backend_dir(experiment: &Experiment, backend: &Backend) -> PathBuf {
    match &backend.dir {
        Some(d) => experiment.dir().join(d),
        None => experiment.dir(),
    }
}

/// How a backend's CPU and RSS are measured.
#[derive(Debug, Clone)]
enum Meter {
    /// The process group the runner started.
    Group(u32),
    /// The cgroup the runner started it in (its whole tree).
    Cgroup(Arc<Cgroup>),
    /// One process given by `pid`.
    Process(u32),
    /// Its own `/metrics` (`host:port`, path).
    Metrics(String, String),
    /// Not measured.
    None,
}

impl Meter {
    /// CPU-seconds so far and RSS now (`None`: not measured or unreadable).
    fn read(&self) -> (Option<f64>, Option<u64>) {
        match self {
            Meter::Group(g) => match procstat::read_group(*g) {
                Ok(u) => (Some(u.cpu_seconds), Some(u.peak_rss_bytes.max(u.rss_bytes))),
                Err(_) => (None, None),
            },
            Meter::Cgroup(g) => (g.cpu_seconds().ok(), g.resident().map(|(_, peak)| peak)),
            Meter::Process(p) => match procstat::read(*p) {
                Ok(u) => (Some(u.cpu_seconds), Some(u.peak_rss_bytes.max(u.rss_bytes))),
                Err(_) => (None, None),
            },
            Meter::Metrics(addr, path) => {
                match child::http_get(addr, path, Duration::from_secs(2)) {
                    Ok((200, body)) => {
                        let samples = prom::parse(&String::from_utf8_lossy(&body));
                        (
                            prom::sum(&samples, "process_cpu_seconds_total", &[]),
                            prom::sum(&samples, "process_resident_memory_bytes", &[])
                                .map(|b| b as u64),
                        )
                    }
                    _ => (None, None),
                }
            }
            Meter::None => (None, None),
        }
    }

    /// CPU-seconds so far and memory now (not the peak), for the usage
    /// timeline.
    fn now(&self) -> (Option<f64>, Option<u64>) {
        match self {
            Meter::Cgroup(g) => (g.cpu_seconds().ok(), g.resident().map(|(now, _)| now)),
            Meter::Group(g) => match procstat::read_group(*g) {
                Ok(u) => (Some(u.cpu_seconds), Some(u.rss_bytes)),
                Err(_) => (None, None),
            },
            other => other.read(),
        }
    }

    /// Whether the runner measures it itself (a started backend).
    fn own(&self) -> bool {
        matches!(self, Meter::Group(_) | Meter::Cgroup(_))
    }

    fn describe(&self) -> String {
        match self {
            Meter::Group(_) => "/proc sampling of its process group every 200 ms (CPU: utime + stime; peak: the largest VmHWM or summed RSS seen)".into(),
            Meter::Cgroup(g) => g.describe(),
            Meter::Process(p) => format!("pid {p}, from /proc"),
            Meter::Metrics(addr, path) => format!("http://{addr}{path}"),
            Meter::None => "not measured (no pid, no process metrics)".into(),
        }
    }
}

/// A started (or found) backend.
struct Running {
    side: Side,
    role: Role,
    label: String,
    language: String,
    /// `host:port`.
    addr: String,
    /// `{http_listen}`'s `host:port`, when its command has one (a gRPC
    /// service's HTTP side, where `[traffic.grpc] streams` publish).
    http_addr: Option<String>,
    child: Option<ChildProcess>,
    meter: Meter,
    /// Largest RSS seen by the watcher (0: none).
    peak_rss: Arc<AtomicU64>,
    /// CPU and memory about once a second, from the watcher.
    usage: Arc<Mutex<Vec<UsageSample>>>,
}

impl Running {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn cpu(&self) -> Option<f64> {
        self.meter.read().0
    }

    fn peak_rss(&self) -> Option<u64> {
        let (_, now) = self.meter.read();
        let seen = self.peak_rss.load(Ordering::Relaxed);
        match (now, seen) {
            (None, 0) => None,
            (now, seen) => Some(now.unwrap_or(0).max(seen)),
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    child::free_port().context("cannot bind a loopback port")
}

/// Values of the placeholders that are the same for every backend of a run.
struct Vars {
    /// Unique per run (`px<unix ms>`): `{run}`.
    run: String,
    /// `{brokers}`.
    brokers: String,
}

/// Fills the placeholders of one backend's command and env.
fn fill(text: &str, port: u16, label: &str, experiment: &Experiment, vars: &Vars) -> String {
    let addr = format!("127.0.0.1:{port}");
    text.replace("{port}", &port.to_string())
        .replace("{listen}", &addr)
        .replace("{url}", &format!("http://{addr}"))
        .replace("{name}", label)
        .replace("{dir}", &experiment.dir().display().to_string())
        .replace("{run}", &vars.run)
        .replace("{brokers}", &vars.brokers)
}

/// Both sides' topics read from the beginning and joined on the file's
/// join key by `parallax-kafka-diff`, until neither has had a record for
/// 3 s. A record without the key cannot be joined: it counts as missing
/// (baseline's) or extra (candidate's), never as nothing.
fn kafka_join(
    kafka: &crate::experiment::KafkaSideEffects,
    vars: &Vars,
    out: &Path,
) -> anyhow::Result<(parallax_report::KafkaComparison, String)> {
    use parallax_kafka_diff::{Differ, DifferConfig, Start, Stop};
    let topic = |t: &str| t.replace("{run}", &vars.run);
    let (base, cand) = (topic(&kafka.baseline_topic), topic(&kafka.candidate_topic));
    eprintln!(
        "joining Kafka topics {base} and {cand} on {} (parallax-kafka-diff)",
        kafka.join
    );
    let mut config = DifferConfig::new(&kafka.brokers(), &base, &cand);
    config.start = Start::Beginning;
    config.value_message = kafka.value_message.clone();
    config.join = kafka
        .join_key()
        .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.reason))?;
    config.samples_file = Some(out.join("kafka-differences.jsonl"));
    let diff = runtime()?.block_on(async {
        let differ = Differ::connect(config).await?;
        Ok::<_, parallax_kafka_diff::Error>(
            differ
                .run(Stop::Idle(Duration::from_secs(3)), std::future::pending())
                .await,
        )
    })?;
    let mut note = format!(
        "Kafka: {} records in {base}, {} in {cand} (the whole run, warm-up included), joined on {}; differences in {}",
        diff.consumed_primary,
        diff.consumed_shadow,
        kafka.join,
        out.join("kafka-differences.jsonl").display()
    );
    if diff.without_event_id_primary + diff.without_event_id_shadow > 0 {
        note.push_str(&format!(
            "; without the join key: {} of {base} (counted missing), {} of {cand} (counted extra)",
            diff.without_event_id_primary, diff.without_event_id_shadow
        ));
    }
    Ok((
        parallax_report::KafkaComparison {
            matched: diff.matched,
            missing_in_shadow: diff.missing_in_shadow + diff.without_event_id_primary,
            extra_in_shadow: diff.extra_in_shadow + diff.without_event_id_shadow,
            different: diff.different,
        },
        note,
    ))
}

/// How the backends the runner starts are accounted and placed: a cgroup
/// each where cgroups are writable (else `/proc`), and a core set each
/// where the machine has at least 4 CPUs.
struct Accounting {
    layout: Option<cgroup::Layout>,
    /// Why cgroups are not used (`None` while they are).
    why_not: Mutex<Option<String>>,
    /// One CPU list per side (baseline, candidate, secondary).
    cores: Option<Vec<String>>,
    cpus: usize,
}

impl Accounting {
    fn new(options: &RunOptions) -> Self {
        let (layout, why_not) = if options.no_cgroups {
            (None, Some("--no-cgroups".to_owned()))
        } else {
            match cgroup::Layout::detect(Path::new(cgroup::ROOT)) {
                Ok(l) => {
                    let swept = cgroup::sweep_stale(&l);
                    if swept.processes > 0 {
                        eprintln!(
                            "killed {} processes an earlier, killed run left in its cgroups",
                            swept.processes
                        );
                    }
                    if swept.groups > 0 {
                        eprintln!("removed {} cgroups left by an earlier run", swept.groups);
                    }
                    (Some(l), None)
                }
                Err(e) => (None, Some(e.to_string())),
            }
        };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            layout,
            why_not: Mutex::new(why_not),
            cores: cgroup::core_sets(cpus, 3),
            cpus,
        }
    }

    /// A cgroup for one backend, or `None` (the reason is kept).
    fn group(&self, label: &str) -> Option<Arc<Cgroup>> {
        let layout = self.layout.as_ref()?;
        match Cgroup::create(layout, label) {
            Ok(g) => Some(Arc::new(g)),
            Err(e) => {
                *self.why_not.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                None
            }
        }
    }

    /// The results' notes on how CPU and memory were measured and where
    /// the backends ran.
    fn notes(&self, running: &[Running]) -> Vec<String> {
        let mut notes = Vec::new();
        let started: Vec<&Running> = running.iter().filter(|r| r.child.is_some()).collect();
        if !started.is_empty() {
            let by_cgroup = started.iter().all(|r| matches!(r.meter, Meter::Cgroup(_)));
            notes.push(if by_cgroup {
                "CPU and memory: a cgroup per backend (its whole process tree): CPU from the kernel's counter, peak memory as its processes' peak RSS".to_owned()
            } else {
                format!(
                    "CPU and memory: /proc sampling of each backend's process group (no cgroup: {})",
                    self.why_not
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone()
                        .unwrap_or_else(|| "unknown".into())
                )
            });
        }
        notes.push(match &self.cores {
            Some(sets) => format!(
                "cores: each backend pinned to its own CPUs ({}; the load generator and proxy keep the others)",
                sets.iter()
                    .zip(running)
                    .map(|(c, r)| format!("{} on {c}", r.label))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!(
                "cores: not pinned: this machine has {} CPU{} (pinning needs at least 4), so the backends, the load generator and the proxy share every core",
                self.cpus,
                if self.cpus == 1 { "" } else { "s" }
            ),
        });
        notes
    }
}

#[allow(clippy::too_many_arguments)]
fn start(
    experiment: &Experiment,
    side: Side,
    backend: &Backend,
    role: Role,
    label: &str,
    out: &Path,
    vars: &Vars,
    accounting: &Accounting,
) -> anyhow::Result<Running> {
    let language = backend.language.clone();
    if let Some(url) = &backend.url {
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        // Reachable, and ready if a path is given.
        let deadline = Instant::now() + backend.ready_timeout();
        loop {
            let ok = match &backend.ready {
                Some(path) => matches!(
                    child::http_get(&addr, path, Duration::from_secs(2)),
                    Ok((200..=299, _))
                ),
                None => std::net::TcpStream::connect(&addr).is_ok(),
            };
            if ok {
                break;
            }
            if Instant::now() > deadline || child::interrupted() {
                bail!(
                    "{}.url: {url} did not answer within {:?}",
                    side.field(),
                    backend.ready_timeout()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let meter = match (
            backend.pid,
            backend.metrics.as_deref().unwrap_or("/metrics"),
        ) {
            (Some(pid), _) => Meter::Process(pid),
            (None, "") => Meter::None,
            (None, path) => {
                let m = Meter::Metrics(addr.clone(), path.to_owned());
                if m.read() == (None, None) {
                    Meter::None
                } else {
                    m
                }
            }
        };
        eprintln!("  {label}: {url}; CPU and RSS: {}", meter.describe());
        return Ok(Running {
            side,
            role,
            label: label.to_owned(),
            language,
            addr,
            http_addr: None,
            child: None,
            meter,
            peak_rss: Arc::new(AtomicU64::new(0)),
            usage: Arc::default(),
        });
    }
    let port = match backend.port {
        Some(p) => p,
        None => free_port()?,
    };
    let addr = format!("127.0.0.1:{port}");
    let dir = backend_dir(experiment, backend);
    let wants_http = |s: &String| s.contains("{http_listen}");
    let http_addr =
        if backend.command.iter().any(wants_http) || backend.env.values().any(wants_http) {
            Some(format!("127.0.0.1:{}", free_port()?))
        } else {
            None
        };
    let fill = |s: &str| {
        let filled = fill(s, port, label, experiment, vars);
        match &http_addr {
            Some(h) => filled.replace("{http_listen}", h),
            None => filled,
        }
    };
    let mut argv: Vec<String> = backend.command.iter().map(|a| fill(a)).collect();
    // A relative program with a slash is relative to the backend's
    // directory, as its arguments are (not to where parallax runs).
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{}.dir: {} does not exist", side.field(), dir.display()))?;
    if argv[0].contains('/') && Path::new(&argv[0]).is_relative() {
        argv[0] = dir.join(&argv[0]).display().to_string();
    }
    // Into its cgroup (and onto its cores) before it runs any code of its
    // own: a shell joins, then execs it, so everything it forks is inside.
    let group = accounting.group(label);
    let cores = accounting.cores.as_ref().and_then(|c| {
        c.get(match side {
            Side::Baseline => 0,
            Side::Candidate => 1,
            Side::Secondary => 2,
        })
    });
    if group.is_some() || cores.is_some() {
        let join = group.as_ref().map(|g| g.join_script()).unwrap_or_default();
        let pin = cores
            .map(|c| format!("taskset -c {c} "))
            .unwrap_or_default();
        let mut wrapped = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!("{join}exec {pin}\"$0\" \"$@\""),
        ];
        wrapped.append(&mut argv);
        argv = wrapped;
    }
    let mut spec = ChildSpec::new(
        format!("the {} ({label})", side.field()),
        &argv[0],
        out.join(format!("{label}.log")),
    );
    spec.args = argv[1..].to_vec();
    spec.env = backend
        .env
        .iter()
        .map(|(k, v)| (k.clone(), fill(v)))
        .collect();
    spec.dir = Some(dir);
    spec.ready_timeout = backend.ready_timeout();
    spec.ready = match (&backend.ready, &backend.ready_log) {
        (Some(path), _) => Readiness::Http {
            addr: addr.clone(),
            path: path.clone(),
        },
        (None, Some(pattern)) => Readiness::Log(regex::Regex::new(pattern)?),
        (None, None) => Readiness::Tcp(addr.clone()),
    };
    let child = ChildProcess::spawn(&spec)
        .map_err(|e| anyhow::anyhow!("{}: {e}", experiment.origin.display()))?;
    let meter = match group {
        Some(g) => Meter::Cgroup(g),
        None => Meter::Group(child.pid()),
    };
    Ok(Running {
        side,
        role,
        label: label.to_owned(),
        language,
        addr,
        http_addr,
        child: Some(child),
        meter,
        peak_rss: Arc::new(AtomicU64::new(0)),
        usage: Arc::default(),
    })
}

/// Polls every started backend: notes the first that dies (and stops the
/// load), and samples RSS for the peak.
struct Watcher {
    stop: Arc<AtomicBool>,
    dead: Arc<Mutex<Option<usize>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Watcher {
    fn start(running: &[Running]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let dead = Arc::new(Mutex::new(None));
        type Watched = (
            usize,
            Option<u32>,
            Meter,
            Arc<AtomicU64>,
            Arc<Mutex<Vec<UsageSample>>>,
        );
        let watched: Vec<Watched> = running
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    i,
                    r.child.as_ref().map(ChildProcess::pid),
                    r.meter.clone(),
                    Arc::clone(&r.peak_rss),
                    Arc::clone(&r.usage),
                )
            })
            .collect();
        let started = Instant::now();
        let (stop2, dead2) = (Arc::clone(&stop), Arc::clone(&dead));
        let thread = std::thread::spawn(move || {
            let mut tick = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                for (i, pid, meter, peak, usage) in &watched {
                    if let Some(pid) = pid {
                        if procstat::exited(*pid) {
                            let mut d = dead2.lock().unwrap_or_else(|e| e.into_inner());
                            if d.is_none() {
                                *d = Some(*i);
                                eprintln!("\na backend exited during the run: stopping the load");
                                open::interrupt();
                                child::interrupt();
                            }
                        }
                    }
                    // /proc is cheap to read often; a backend's /metrics once a second.
                    let due = !matches!(meter, Meter::Metrics(..)) || tick.is_multiple_of(5);
                    if due {
                        if let (_, Some(rss)) = meter.read() {
                            peak.fetch_max(rss, Ordering::Relaxed);
                        }
                    }
                    // CPU and memory over time, once a second.
                    if tick.is_multiple_of(5) && meter.own() {
                        if let (Some(cpu), Some(mem)) = meter.now() {
                            usage
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(UsageSample {
                                    t_secs: started.elapsed().as_secs_f64(),
                                    cpu_seconds: cpu,
                                    memory_bytes: mem,
                                });
                        }
                    }
                }
                tick += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Self {
            stop,
            dead,
            thread: Mutex::new(Some(thread)),
        }
    }

    fn dead(&self) -> Option<usize> {
        *self.dead.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The open-model configuration of one phase.
fn open_config(ctx: &Ctx, url: &str, rate: f64, secs: f64) -> OpenConfig {
    let load = &ctx.experiment.load;
    let mut c = OpenConfig::new(
        url,
        Schedule {
            rate_per_sec: rate,
            ramp: Duration::ZERO,
            duration: Duration::from_secs_f64(secs),
            max_requests: u64::MAX,
        },
    );
    c.users = load.connections;
    c.timeout = Duration::from_millis(load.timeout_ms);
    c
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Unmeasured load for `secs` (slots from [`WARMUP_FIRST_SLOT`] + `first`).
fn warm(ctx: &Ctx, url: &str, rate: f64, secs: f64, first: u64) -> anyhow::Result<()> {
    if secs <= 0.0 {
        return Ok(());
    }
    phase(
        ctx,
        WARMUP_FIRST_SLOT + first,
        open_config(ctx, url, rate, secs),
    )
    .context("warm-up")?;
    // Warm-up latencies are not measured; drop what the routes saw.
    ctx.workload.take_route_latency();
    Ok(())
}

/// Measured load for `secs`, slots from `first`.
fn measure(
    ctx: &Ctx,
    url: &str,
    rate: f64,
    secs: f64,
    first: u64,
    html: PathBuf,
) -> anyhow::Result<OpenReport> {
    let mut c = open_config(ctx, url, rate, secs);
    c.html_report = Some(html);
    c.progress = true;
    phase(ctx, first, c)
}

/// One phase of load from slot `first`: the HTTP templates on goose, or
/// the `[traffic.grpc]` calls over HTTP/2 on the same schedule.
fn phase(ctx: &Ctx, first: u64, c: OpenConfig) -> anyhow::Result<OpenReport> {
    if let Some(grpc) = ctx.grpc.as_ref().filter(|g| g.publishes()) {
        // The streams to the URL (a backend, or the proxy in front of all
        // of them); the publishes to that backend, or to all of them.
        let own: Vec<String> = ctx
            .http_addrs
            .iter()
            .filter(|(url, _)| *url == c.base_url)
            .filter_map(|(_, h)| h.clone())
            .collect();
        let http = if own.is_empty() {
            ctx.http_addrs
                .iter()
                .filter_map(|(_, h)| h.clone())
                .collect()
        } else {
            own
        };
        return grpc.run_streams(
            &c.base_url,
            &http,
            c.schedule.rate_per_sec,
            c.schedule.duration.as_secs_f64(),
            first,
            c.timeout,
        );
    }
    if let Some(grpc) = &ctx.grpc {
        return grpc.run(
            &c.base_url,
            None,
            c.schedule.rate_per_sec,
            c.schedule.duration.as_secs_f64(),
            first,
            c.users,
            c.timeout,
        );
    }
    let w = Offset {
        workload: Arc::clone(&ctx.workload),
        first,
    };
    Ok(runtime()?.block_on(open::run(w, c))?)
}

/// Shadow (and A/A): the proxy in front, every request mirrored.
fn shadow(ctx: &Ctx, running: &[Running], steps: &[Step]) -> anyhow::Result<Vec<ScenarioResult>> {
    let out = &ctx.options.out;
    let mismatch_log = out.join("mismatches.jsonl");
    let _ = std::fs::remove_file(&mismatch_log);
    let proxy = Proxy::start(ctx, running, &mismatch_log)?;
    let mut results = Vec::new();
    for (k, step) in steps.iter().enumerate() {
        let warmup = if k == 0 { ctx.warmup } else { 0.0 };
        let name = ctx.scenario_name(step);
        eprintln!(
            "{name}: shadow, {} primary, {} shadow; {} req/s for {} s after {warmup} s warm-up",
            running[0].label, running[1].label, step.rate, step.duration_secs
        );
        if warmup > 0.0 {
            if let Err(e) = warm(ctx, &proxy.url(), step.rate, warmup, 0) {
                ctx.check_alive(running)?;
                return Err(e);
            }
            settle();
        }
        let before = Snapshot::take(&proxy, ctx.name, running)?;
        let log_offset = std::fs::metadata(&mismatch_log).map_or(0, |m| m.len());
        let polling = AtomicBool::new(false);
        let (report, timeline) = std::thread::scope(|scope| {
            let poller = scope.spawn(|| poll_histograms(&proxy, ctx.name, &polling));
            let html = if ctx.several_steps {
                out.join(format!("goose-{}.html", sanitize(&name)))
            } else {
                out.join("goose.html")
            };
            let first = (k as u64) << 36;
            let report = measure(
                ctx,
                &proxy.url(),
                step.rate,
                step.duration_secs,
                first,
                html,
            );
            settle();
            polling.store(true, Ordering::Relaxed);
            (report, poller.join().unwrap_or_default())
        });
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                ctx.check_alive(running)?;
                return Err(e);
            }
        };
        ctx.check_alive(running)?;
        let after = Snapshot::take(&proxy, ctx.name, running)?;
        ctx.workload.take_route_latency();

        let counters = |name: &str, label: &str, value: &str| {
            prom::sum(
                &after.metrics,
                name,
                &[("service", ctx.name), (label, value)],
            )
            .unwrap_or(0.0)
                - prom::sum(
                    &before.metrics,
                    name,
                    &[("service", ctx.name), (label, value)],
                )
                .unwrap_or(0.0)
        };
        let mut backends = Vec::new();
        // The secondary is the proxy's noise reference, not a side of the
        // comparison: it is not a backend of the results.
        for (i, r) in running.iter().take(2).enumerate() {
            let backend = ["primary", "shadow"][i];
            let mut h = after
                .histograms
                .get(backend)
                .cloned()
                .unwrap_or_else(latency_histogram);
            if let Some(b) = before.histograms.get(backend) {
                let _ = h.subtract(b);
            }
            let errors = if i == 0 {
                report.errors
            } else {
                (counters("parallax_mirror_total", "outcome", "shadow_error")
                    + counters("parallax_mirror_total", "outcome", "shadow_timeout"))
                    as u64
            };
            let timeline = timeline_from(&timeline, backend);
            backends.push(backend_result(
                r,
                &h,
                report.measured_secs,
                errors,
                if i == 0 { report.late } else { 0 },
                timeline,
                before.cpu[i],
                after.cpu[i],
            ));
        }
        let mut scenario = ctx.scenario(step, backends);
        scenario.warmup_secs = warmup;
        let matched = counters("parallax_comparisons_total", "result", "match") as u64;
        let mismatched = counters("parallax_comparisons_total", "result", "mismatch") as u64;
        let noise = counters("parallax_comparisons_total", "result", "noise") as u64;
        let (differences, logged, samples) =
            differences_since(&mismatch_log, log_offset, &running[0].label);
        let mut classes = BTreeMap::new();
        for d in &differences {
            *classes.entry(d.kind.clone()).or_default() += d.count;
        }
        scenario.comparison = Some(Comparison {
            compared: matched + mismatched + noise,
            matched,
            mismatched,
            noise,
            dropped: (counters("parallax_mirror_total", "outcome", "dropped_queue_full")
                + counters("parallax_mirror_total", "outcome", "shadow_timeout")
                + counters("parallax_mirror_total", "outcome", "body_too_large"))
                as u64,
            classes,
            kafka: None,
            differences,
            samples,
        });
        scenario.routes = proxy_routes(&before.metrics, &after.metrics, ctx.name, running);
        let client = LatencySummary::from_histogram(&report.latency_us);
        scenario.notes.push(format!(
            "shadow: {} primary, {} shadow, every request mirrored by parallax proxy; backend latency as the proxy measured it",
            running[0].label, running[1].label
        ));
        scenario.notes.push(format!(
            "client through the proxy (from intended start): {:.1} req/s of {}, p50 {} µs, p99 {} µs, {} late, {} errors{}",
            report.achieved_rate(),
            step.rate,
            client.p50_us,
            client.p99_us,
            report.late,
            report.errors,
            report
                .error_samples
                .first()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        ));
        if mismatched > 0 {
            scenario.notes.push(format!(
                "mismatches by path counted over the {logged} mismatches the proxy logged ({})",
                mismatch_log.display()
            ));
        }
        if let Some(secondary) = running.get(2) {
            scenario.notes.push(format!(
                "{} is the secondary (a second baseline): differences it shares with the baseline count as noise",
                secondary.label
            ));
        }
        for r in running {
            if !r.meter.own() {
                scenario
                    .notes
                    .push(format!("{}: CPU and RSS: {}", r.label, r.meter.describe()));
            }
        }
        results.push(scenario);
    }
    proxy.child.stop(Duration::from_secs(10));
    Ok(results)
}

/// Direct: each backend alone in turn, in short blocks interleaved A B B A
/// (repeated, or in a seeded random order: [`interleave`]); block `k` of
/// each backend is sent the same slots, so both see the same requests, and
/// each backend's latency is its blocks' histograms merged.
fn direct(ctx: &Ctx, running: &[Running], steps: &[Step]) -> anyhow::Result<Vec<ScenarioResult>> {
    let mut results = Vec::new();
    let block_secs = ctx.options.block_secs.unwrap_or(DEFAULT_BLOCK_SECS);
    for (k, step) in steps.iter().enumerate() {
        let name = ctx.scenario_name(step);
        let (pairs, block) = interleave::split(step.duration_secs, block_secs);
        let block_slots = (step.rate * block).ceil() as u64;
        let base = (k as u64) << 36;
        let schedule = interleave::schedule(pairs, ctx.options.order);
        // Each alone for half the warm-up, before any measured block, on
        // the same slots: a side effect joined across the backends (Kafka)
        // must see the same warm-up requests from each, or it would report
        // them as missing and extra.
        if ctx.warmup > 0.0 {
            for r in running.iter().take(2) {
                eprintln!("{name}: warm-up, {} alone", r.label);
                if let Err(e) = warm(ctx, &r.url(), step.rate, ctx.warmup / 2.0, base) {
                    ctx.check_alive(running)?;
                    return Err(e);
                }
            }
        }
        let mut acc = [Blocks::default(), Blocks::default()];
        for (n, b) in schedule.iter().enumerate() {
            let r = &running[b.backend];
            eprintln!(
                "{name}: block {} of {} ({block:.1} s): {} alone",
                n + 1,
                schedule.len(),
                r.label
            );
            let first = base + b.index as u64 * block_slots;
            run_block(
                ctx,
                running,
                b.backend,
                step.rate,
                block,
                first,
                &mut acc[b.backend],
            )?;
        }
        let mut scenario = blocks_scenario(ctx, running, step, acc);
        let order: String = schedule
            .iter()
            .take(16)
            .map(|b| if b.backend == 0 { 'A' } else { 'B' })
            .collect();
        scenario.notes.push(format!(
            "direct, interleaved: A = {a}, B = {b}, each alone in {pairs} blocks of {block:.2} s, order {order}{more} ({how}); block k of each gets the same requests; latency from the load generator, from each request's intended start, merged over each backend's blocks",
            a = running[0].label,
            b = running[1].label,
            more = if schedule.len() > 16 { "…" } else { "" },
            how = match ctx.options.order {
                interleave::Order::Abba => "A B B A repeated".to_owned(),
                interleave::Order::Random(seed) => format!("each pair's order by a coin seeded {seed}"),
            },
        ));
        results.push(scenario);
    }
    Ok(results)
}

/// What one backend's blocks added up to.
#[derive(Default)]
struct Blocks {
    latency: Option<Histogram<u64>>,
    routes: BTreeMap<String, Histogram<u64>>,
    timeline: Vec<Window>,
    errors: u64,
    late: u64,
    secs: f64,
    /// `None` once a reading failed.
    cpu: Option<f64>,
    cpu_failed: bool,
}

impl Blocks {
    fn latency(&self) -> Histogram<u64> {
        self.latency.clone().unwrap_or_else(latency_histogram)
    }
}

/// One measured block of one backend, alone, added to `acc`; the users
/// (most requests in flight) at least `users`.
#[allow(clippy::too_many_arguments)]
fn run_block_with(
    ctx: &Ctx,
    running: &[Running],
    i: usize,
    rate: f64,
    secs: f64,
    first: u64,
    users: usize,
    late_after: Option<Duration>,
    acc: &mut Blocks,
) -> anyhow::Result<OpenReport> {
    let r = &running[i];
    let cpu_before = r.cpu();
    let mut c = open_config(ctx, &r.url(), rate, secs);
    c.users = c.users.max(users);
    if let Some(late_after) = late_after {
        c.late_after = late_after;
    }
    let report = match phase(ctx, first, c) {
        Ok(report) => report,
        Err(e) => {
            ctx.check_alive(running)?;
            return Err(e);
        }
    };
    ctx.check_alive(running)?;
    match (cpu_before, r.cpu()) {
        (Some(a), Some(b)) if !acc.cpu_failed => *acc.cpu.get_or_insert(0.0) += (b - a).max(0.0),
        _ => {
            acc.cpu_failed = true;
            acc.cpu = None;
        }
    }
    acc.latency
        .get_or_insert_with(latency_histogram)
        .add(&report.latency_us)?;
    for w in &report.windows {
        acc.timeline.push(Window::from_histogram(
            acc.secs + w.t_secs,
            &w.latency_us,
            w.errors,
        ));
    }
    acc.errors += report.errors;
    acc.late += report.late + report.not_sent;
    acc.secs += report.measured_secs;
    for (route, h) in ctx.workload.take_route_latency() {
        acc.routes
            .entry(route)
            .or_insert_with(latency_histogram)
            .add(&h)?;
    }
    Ok(report)
}

fn run_block(
    ctx: &Ctx,
    running: &[Running],
    i: usize,
    rate: f64,
    secs: f64,
    first: u64,
    acc: &mut Blocks,
) -> anyhow::Result<()> {
    run_block_with(ctx, running, i, rate, secs, first, 0, None, acc).map(|_| ())
}

/// The scenario of both backends' blocks: latency merged per backend,
/// per route from the workload.
fn blocks_scenario(
    ctx: &Ctx,
    running: &[Running],
    step: &Step,
    acc: [Blocks; 2],
) -> ScenarioResult {
    let mut backends = Vec::new();
    for (i, a) in acc.iter().enumerate() {
        let r = &running[i];
        let mut b = backend_result(
            r,
            &a.latency(),
            a.secs,
            a.errors,
            a.late,
            a.timeline.clone(),
            Some(0.0),
            if a.cpu_failed {
                None
            } else {
                a.cpu.or(Some(0.0))
            },
        );
        b.peak_rss_bytes = r.peak_rss();
        backends.push(b);
    }
    let mut scenario = ctx.scenario(step, backends);
    let mut seen: Vec<&String> = Vec::new();
    for route in acc[0].routes.keys().chain(acc[1].routes.keys()) {
        if seen.contains(&route) {
            continue;
        }
        seen.push(route);
        let backends = (0..2)
            .filter_map(|i| {
                let h = acc[i].routes.get(route)?;
                let s = LatencySummary::from_histogram(h);
                Some(RouteBackend {
                    name: running[i].label.clone(),
                    requests: s.count,
                    mean_us: s.mean_us,
                    p50_us: s.p50_us,
                    p99_us: s.p99_us,
                    estimated: false,
                })
            })
            .collect();
        scenario.routes.push(RouteResult {
            route: route.clone(),
            backends,
        });
    }
    for r in running.iter().take(2) {
        if !r.meter.own() {
            scenario
                .notes
                .push(format!("{}: CPU and RSS: {}", r.label, r.meter.describe()));
        }
    }
    scenario
}

/// Capacity at an SLO ([`capacity`]): each backend's own search, its
/// probes interleaved with the other's (A B, then B A, …); every probe is
/// a short unmeasured warm-up and a measured block at one rate, alone.
/// The scenario's rows are both backends at the highest rate both held.
fn capacity_search(
    ctx: &Ctx,
    running: &[Running],
    steps: &[Step],
) -> anyhow::Result<Vec<ScenarioResult>> {
    let plan = ctx
        .options
        .capacity
        .expect("capacity_search runs only with a plan");
    let probe_secs = steps.first().map_or(5.0, |s| s.duration_secs);
    let warm_secs = ctx.warmup.min(1.0);
    let mut searches = [capacity::Search::new(plan), capacity::Search::new(plan)];
    let mut probes: [Vec<CapacityProbe>; 2] = Default::default();
    let mut kept: [Vec<(f64, Blocks)>; 2] = Default::default();
    let first_of_pair = |round: usize| match ctx.options.order {
        interleave::Order::Abba => round % 2,
        order => interleave::schedule(round + 1, order)[2 * round].backend,
    };
    let bound_secs = plan.slo.below_us as f64 / 1e6;
    for round in 0.. {
        let first = first_of_pair(round);
        let mut any = false;
        for i in [first, 1 - first] {
            let Some(rate) = searches[i].next_rate() else {
                continue;
            };
            any = true;
            let r = &running[i];
            // The same slots (hence requests) at the same rate on both.
            let slot = (rate.round() as u64) << 24;
            if warm_secs > 0.0 {
                if let Err(e) = warm(ctx, &r.url(), rate, warm_secs, slot) {
                    ctx.check_alive(running)?;
                    return Err(e);
                }
            }
            // Enough users that the generator, not Little's law, is never
            // the limit: twice the requests in flight at the SLO's bound.
            let users = ((rate * bound_secs * 2.0).ceil() as usize).clamp(1, 2000);
            // A slot counts as late once it is sent half the SLO's bound
            // after its time (at least the generator's usual 10 ms): on a
            // busy machine the scheduler's own jitter exceeds 10 ms, and
            // latency is measured from the slot's time anyway, so the SLO
            // already sees every lateness; the late share is there to catch
            // a backlog.
            let late_after =
                Duration::from_secs_f64(bound_secs / 2.0).max(Duration::from_millis(10));
            let mut acc = Blocks::default();
            let report = run_block_with(
                ctx,
                running,
                i,
                rate,
                probe_secs,
                slot,
                users,
                Some(late_after),
                &mut acc,
            )?;
            let h = acc.latency();
            let at_q = if h.is_empty() {
                u64::MAX
            } else {
                h.value_at_quantile(plan.slo.quantile)
            };
            let slots = report.requests + report.not_sent;
            let held = plan.holds(slots, acc.late, acc.errors, at_q);
            searches[i].record(rate, held);
            let s = LatencySummary::from_histogram(&h);
            eprintln!(
                "{}: {} at {rate}/s: {} {}, {} late, {} errors of {slots}: {}",
                ctx.name,
                r.label,
                plan.slo,
                child_fmt_us(at_q),
                acc.late,
                acc.errors,
                if held { "held" } else { "not held" }
            );
            probes[i].push(CapacityProbe {
                rate_per_sec: rate,
                requests: report.requests,
                late: acc.late,
                errors: acc.errors,
                p50_us: s.p50_us,
                p99_us: s.p99_us,
                slo_us: at_q.min(h.max()),
                cpu_seconds: acc.cpu,
                held,
            });
            kept[i].push((rate, acc));
        }
        if !any {
            break;
        }
    }
    // The rows: both at the highest rate both held (else the lowest tried).
    let held_by = |i: usize| -> Vec<f64> {
        probes[i]
            .iter()
            .filter(|p| p.held)
            .map(|p| p.rate_per_sec)
            .collect()
    };
    let (a, b) = (held_by(0), held_by(1));
    let common = a
        .iter()
        .filter(|r| b.contains(r))
        .fold(None, |m: Option<f64>, r| Some(m.map_or(*r, |m| m.max(*r))));
    let row_rate = common.unwrap_or_else(|| probes[0].first().map_or(0.0, |p| p.rate_per_sec));
    let take = |i: usize, kept: &mut Vec<(f64, Blocks)>| -> Blocks {
        kept.iter()
            .position(|(r, _)| *r == row_rate)
            .map(|at| kept.swap_remove(at).1)
            .unwrap_or_else(|| {
                // Not tried at that rate: its first probe.
                let _ = i;
                if kept.is_empty() {
                    Blocks::default()
                } else {
                    kept.swap_remove(0).1
                }
            })
    };
    let [mut k0, mut k1] = kept;
    let acc = [take(0, &mut k0), take(1, &mut k1)];
    let step = Step {
        rate: row_rate,
        duration_secs: probe_secs,
    };
    let mut scenario = blocks_scenario(ctx, running, &step, acc);
    scenario.scenario = ctx.name.to_owned();
    let backends: Vec<BackendCapacity> = (0..2)
        .map(|i| BackendCapacity {
            name: running[i].label.clone(),
            capacity_per_sec: searches[i].capacity(),
            at_least: searches[i].at_least(),
            probes: std::mem::take(&mut probes[i]),
        })
        .collect();
    let cap = |i: usize| {
        backends[i]
            .capacity_per_sec
            .map_or("none held".to_owned(), |c| {
                format!("{}{c}/s", if backends[i].at_least { ">= " } else { "" })
            })
    };
    scenario.notes.push(format!(
        "capacity at {} with under {}% late or failed slots ({}, {} s probes after {} s warm-up, each backend alone, probes interleaved): {} {}, {} {}; the rows are both at {row_rate}/s, {}",
        plan.slo,
        plan.max_late_ratio * 100.0,
        if plan.bisect { "ladder up, then bisection" } else { "ladder" },
        probe_secs,
        warm_secs,
        running[0].label,
        cap(0),
        running[1].label,
        cap(1),
        if common.is_some() { "the highest rate both held" } else { "the first rate tried (no rate was held by both)" }
    ));
    scenario.capacity = Some(Capacity {
        slo: plan.slo.to_string(),
        max_late_ratio: plan.max_late_ratio,
        method: if plan.bisect { "search" } else { "ladder" }.into(),
        backends,
    });
    Ok(vec![scenario])
}

fn child_fmt_us(us: u64) -> String {
    if us == u64::MAX {
        "n/a".into()
    } else if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

#[allow(clippy::too_many_arguments)]
fn backend_result(
    r: &Running,
    latency: &Histogram<u64>,
    measured_secs: f64,
    errors: u64,
    late: u64,
    timeline: Vec<Window>,
    cpu_before: Option<f64>,
    cpu_after: Option<f64>,
) -> BackendResult {
    BackendResult {
        timeline,
        cpu_seconds: match (cpu_before, cpu_after) {
            (Some(a), Some(b)) => Some((b - a).max(0.0)),
            _ => None,
        },
        peak_rss_bytes: r.peak_rss(),
        accounting: Some(r.meter.describe()),
        usage: r.usage.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        ..measured(
            &r.label,
            &r.language,
            r.role,
            latency,
            measured_secs,
            errors,
            late,
        )
    }
}

/// A backend's figures from its latency histogram and counts, with no
/// CPU, memory, timeline or usage yet (the caller adds what it measured;
/// `parallax bench` builds its backends with it too).
pub fn measured(
    name: &str,
    language: &str,
    role: Role,
    latency: &Histogram<u64>,
    measured_secs: f64,
    errors: u64,
    late: u64,
) -> BackendResult {
    let mut h = latency_histogram();
    let _ = h.add(latency);
    BackendResult {
        name: name.to_owned(),
        language: language.to_owned(),
        role,
        achieved_rate_per_sec: if measured_secs > 0.0 {
            h.len() as f64 / measured_secs
        } else {
            0.0
        },
        requests: h.len(),
        errors,
        late,
        latency: LatencySummary::from_histogram(&h),
        histogram: hdr::encode(&h),
        timeline: Vec::new(),
        cpu_seconds: None,
        peak_rss_bytes: None,
        accounting: None,
        usage: Vec::new(),
        extra: Vec::new(),
    }
}

/// `parallax proxy` as a child process, configured for the experiment.
struct Proxy {
    child: ChildProcess,
    listen: String,
    admin: String,
}

impl Proxy {
    fn start(ctx: &Ctx, running: &[Running], mismatch_log: &Path) -> anyhow::Result<Self> {
        let out = &ctx.options.out;
        let (listen, admin) = (
            format!("127.0.0.1:{}", free_port()?),
            format!("127.0.0.1:{}", free_port()?),
        );
        let text = proxy_config(
            ctx.experiment,
            ctx.name,
            &listen,
            &admin,
            running,
            mismatch_log,
            ctx.options.mirror_order,
        )?;
        let config = out.join("proxy.toml");
        std::fs::write(&config, &text)?;
        let mut spec = ChildSpec::new(
            "parallax proxy",
            &ctx.options.proxy_exe,
            out.join("proxy.log"),
        );
        spec.args = vec![
            "proxy".into(),
            "--config".into(),
            config.display().to_string(),
        ];
        spec.ready = Readiness::Http {
            addr: admin.clone(),
            path: "/healthz".into(),
        };
        spec.ready_timeout = Duration::from_secs(20);
        let child = ChildProcess::spawn(&spec)?;
        Ok(Self {
            child,
            listen,
            admin,
        })
    }

    fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    fn get(&self, path: &str) -> anyhow::Result<String> {
        let (status, body) = child::http_get(&self.admin, path, Duration::from_secs(10))
            .with_context(|| format!("proxy admin {path}"))?;
        if status != 200 {
            bail!("proxy admin {path} answered {status}");
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    fn histograms(&self, service: &str) -> anyhow::Result<BTreeMap<String, Histogram<u64>>> {
        let body: serde_json::Value =
            serde_json::from_str(&self.get("/admin/latency/histograms")?)?;
        let Some(backends) = body["services"][service].as_object() else {
            bail!("the proxy reports no service {service}");
        };
        backends
            .iter()
            .map(|(backend, encoded)| {
                let text = encoded.as_str().context("histogram is not a string")?;
                let h = hdr::decode(text).map_err(|e| anyhow::anyhow!("{backend}: {e}"))?;
                Ok((backend.clone(), h))
            })
            .collect()
    }
}

/// The proxy configuration of an experiment (see [`crate::proxyconf`]).
fn proxy_config(
    experiment: &Experiment,
    service: &str,
    listen: &str,
    admin: &str,
    running: &[Running],
    mismatch_log: &Path,
    mirror_order: Option<parallax_proxy::config::MirrorOrder>,
) -> anyhow::Result<String> {
    let addr = |i: usize| running.get(i).map(|r| r.addr.clone());
    let pid = |i: usize| {
        running
            .get(i)
            .and_then(|r| r.child.as_ref().map(ChildProcess::pid))
    };
    let mut s = ProxyService::new(service, listen, &running[0].addr, &running[1].addr);
    s.secondary = addr(2);
    s.pids = [pid(0), pid(1), pid(2)];
    s.shadow_timeout_ms = experiment.load.shadow_timeout_ms;
    s.mirror_order = mirror_order.unwrap_or(s.mirror_order);
    s.mismatch_log = Some(mismatch_log.to_owned());
    s.compare = experiment.compare.clone();
    s.routes = experiment.routes.clone();
    crate::grpc::shadow_service(experiment, &mut s)?;
    proxyconf::render(admin, &[s])
}

/// The proxy and the backends at one moment.
struct Snapshot {
    histograms: BTreeMap<String, Histogram<u64>>,
    metrics: Vec<prom::Sample>,
    cpu: Vec<Option<f64>>,
}

impl Snapshot {
    fn take(proxy: &Proxy, service: &str, running: &[Running]) -> anyhow::Result<Self> {
        Ok(Self {
            histograms: proxy.histograms(service)?,
            metrics: prom::parse(&proxy.get("/metrics")?),
            cpu: running.iter().map(Running::cpu).collect(),
        })
    }
}

/// Lets mirrored requests still in flight land before a snapshot.
fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}

/// Snapshots of the proxy's histograms once a second until `stop`.
fn poll_histograms(
    proxy: &Proxy,
    service: &str,
    stop: &AtomicBool,
) -> Vec<BTreeMap<String, Histogram<u64>>> {
    let mut snapshots = Vec::new();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(h) = proxy.histograms(service) {
            snapshots.push(h);
        }
        next += Duration::from_secs(1);
        while Instant::now() < next && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    snapshots
}

fn timeline_from(snapshots: &[BTreeMap<String, Histogram<u64>>], backend: &str) -> Vec<Window> {
    snapshots
        .windows(2)
        .enumerate()
        .filter_map(|(t, pair)| {
            let (a, b) = (pair[0].get(backend)?, pair[1].get(backend)?);
            let mut h = b.clone();
            h.subtract(a).ok()?;
            Some(Window::from_histogram(t as f64, &h, 0))
        })
        .filter(|w| w.requests > 0)
        .collect()
}

/// Latency per route and backend from the proxy's Prometheus histograms
/// (exact mean; percentiles interpolated within its buckets).
fn proxy_routes(
    before: &[prom::Sample],
    after: &[prom::Sample],
    service: &str,
    running: &[Running],
) -> Vec<RouteResult> {
    const NAME: &str = "parallax_upstream_request_duration_seconds";
    let mut labels: Vec<String> = Vec::new();
    for s in after.iter().filter(|s| s.name == format!("{NAME}_count")) {
        if let Some(route) = s.label("route") {
            if s.label("service") == Some(service) && !labels.iter().any(|l| l == route) {
                labels.push(route.to_owned());
            }
        }
    }
    labels
        .into_iter()
        .filter_map(|route| {
            let backends: Vec<RouteBackend> = running
                .iter()
                .zip(["primary", "shadow"])
                .filter_map(|(r, backend)| {
                    let filter = [
                        ("service", service),
                        ("route", route.as_str()),
                        ("backend", backend),
                    ];
                    let h = prom::histogram(after, NAME, &filter)
                        .since(&prom::histogram(before, NAME, &filter));
                    (h.count >= 1.0).then(|| RouteBackend {
                        name: r.label.clone(),
                        requests: h.count as u64,
                        mean_us: h.mean() * 1e6,
                        p50_us: (h.quantile(0.5) * 1e6).round() as u64,
                        p99_us: (h.quantile(0.99) * 1e6).round() as u64,
                        estimated: true,
                    })
                })
                .collect();
            (!backends.is_empty()).then_some(RouteResult { route, backends })
        })
        .collect()
}

/// Mismatches by (route, path, kind) from the JSON-lines log written after
/// `offset`; array indices fold to `*`. Also how many mismatches it held.
/// The mismatches by path since `offset` of the proxy's sample log, the
/// samples read, and the first few samples of each route.
fn differences_since(
    log: &Path,
    offset: u64,
    _baseline: &str,
) -> (Vec<PathDifference>, u64, Vec<String>) {
    let Ok(mut file) = std::fs::File::open(log) else {
        return (Vec::new(), 0, Vec::new());
    };
    if file.seek(std::io::SeekFrom::Start(offset)).is_err() {
        return (Vec::new(), 0, Vec::new());
    }
    let mut samples: Vec<String> = Vec::new();
    let mut per_route: BTreeMap<String, usize> = BTreeMap::new();
    let mut found: BTreeMap<(String, String, String), PathDifference> = BTreeMap::new();
    let mut logged = 0;
    for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
        let Ok(sample) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        logged += 1;
        let route = sample["route"].as_str().unwrap_or("other").to_owned();
        let kept = per_route.entry(route.clone()).or_default();
        if *kept < parallax_report::results::MAX_SAMPLES_PER_ROUTE {
            *kept += 1;
            samples.push(line.clone());
        }
        let mut in_this = Vec::new();
        for d in sample["mismatches"].as_array().into_iter().flatten() {
            let path = fold_indices(d["path"].as_str().unwrap_or("body"));
            let kind = d["kind"].as_str().unwrap_or("value").to_owned();
            let key = (route.clone(), path.clone(), kind.clone());
            if in_this.contains(&key) {
                continue;
            }
            in_this.push(key.clone());
            let entry = found.entry(key).or_insert_with(|| PathDifference {
                route: route.clone(),
                path,
                kind,
                count: 0,
                baseline: d["primary"].as_str().map(str::to_owned),
                candidate: d["shadow"].as_str().map(str::to_owned),
            });
            entry.count += 1;
        }
    }
    let mut list: Vec<PathDifference> = found.into_values().collect();
    list.sort_by(|a, b| b.count.cmp(&a.count).then(a.path.cmp(&b.path)));
    (list, logged, samples)
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_indices_fold() {
        assert_eq!(fold_indices("/items/3/total"), "/items/*/total");
    }

    #[test]
    fn differences_are_counted_once_per_pair_by_folded_path() {
        let dir = std::env::temp_dir().join(format!("parallax-runner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("m.jsonl");
        let line = |route: &str| {
            serde_json::json!({
                "route": route,
                "mismatches": [
                    {"path": "/items/0/total", "kind": "type", "primary": "1.5", "shadow": "\"1.50\""},
                    {"path": "/items/1/total", "kind": "type", "primary": "2.5", "shadow": "\"2.50\""},
                    {"path": "/status", "kind": "value", "primary": null, "shadow": "\"x\""}
                ]
            })
            .to_string()
                + "\n"
        };
        let early = line("/old");
        std::fs::write(
            &log,
            format!(
                "{early}{}{}",
                line("/v1/orders/{id}"),
                line("/v1/orders/{id}")
            ),
        )
        .unwrap();
        let (diffs, logged, samples) = differences_since(&log, early.len() as u64, "go");
        assert!(!samples.is_empty());
        assert_eq!(logged, 2);
        assert_eq!(diffs.len(), 2);
        assert_eq!(diffs[0].path, "/items/*/total");
        assert_eq!(diffs[0].count, 2, "once per pair, not per element");
        assert_eq!(diffs[0].baseline.as_deref(), Some("1.5"));
        assert_eq!(diffs[1].baseline, None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
