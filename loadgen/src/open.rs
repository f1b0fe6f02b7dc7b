//! Open-model load on goose.
//!
//! goose 0.19 only knows closed loops: each user sends, waits for the
//! answer and sends again, so a slow service slows the load down with it
//! and hides its own stalls (coordinated omission). `--throttle-requests`
//! only caps that loop. This module turns goose users into senders on a
//! schedule, the same one [`crate::pacing`] uses: request `n` is due at
//! `start + n / rate` (after a linear ramp), whatever became of earlier
//! requests. Each goose user waits for the next slot, sends with goose's
//! own client (so goose's request metrics and HTML report see every
//! request), and records the latency **from the slot's time** into HDR
//! histograms. The same corrected latency is also handed to
//! goose as a custom request named `slot:<name>`, so its report shows both
//! the raw request times and the corrected ones side by side.
//!
//! Slots a user takes later than [`OpenConfig::late_after`] are counted as
//! late (they are still sent); a late count says the generator had too few
//! users or too little CPU, and [`OpenReport::held`] turns that into a yes
//! or no. Users are many (`rate × latency` with room for stalls): an idle
//! user costs a sleeping task and, with the shared client goose builds for
//! a `without_cookies` builder, no connection of its own.
//!
//! # Sub-millisecond arrivals
//! The users do not sleep on tokio's timer: it ticks in whole
//! milliseconds, so at 5,000 requests/s every millisecond's five requests
//! would leave together and queue behind each other in the service. A
//! [`Metronome`] thread sleeps to each slot with a 1 ns timer slack and
//! releases it to one waiting user, which sends at once: arrivals keep the
//! schedule's spacing to within a wake-up (µs), and a user that is free
//! costs nothing while it waits. goose has no target-rate scheduler to use
//! instead (its throttle caps a closed loop), so the pacing stays in front
//! of goose, and goose keeps the client, the request metrics and the report.
//! On a current-thread runtime (`parallax load`'s) the metronome is a
//! timerfd on the runtime's own reactor instead of a thread: one wake-up
//! per slot ([`Metronome::start_on_reactor`]).
//! A slot is released [`OpenConfig::early_by`] before its time, room for
//! the hand-off to the user; a request sent before its slot's time is
//! measured from its send, one sent after from its slot.
//!
//! goose's stop switch is process-wide: the run pulls it once the schedule
//! is complete and nothing is in flight, and goose resets it when the next
//! attack starts, so runs in one process must not overlap.
//!
//! Latencies are split into one-second windows from the end of the
//! warm-up, for latency-over-time plots, and a progress line is printed
//! once a second while the run goes.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use goose::client::GooseClientBuilder;
use goose::config::GooseConfiguration;
use goose::prelude::*;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::metronome::Metronome;
use crate::pacing::{latency_histogram, Schedule};
use crate::Error;

/// One request a workload wants sent for a slot.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: GooseMethod,
    /// Path and query, joined to the target's base URL.
    pub path: String,
    pub body: Option<Bytes>,
    pub content_type: Option<&'static str>,
    /// Work units it carries (events in a batch; 1 otherwise).
    pub units: u64,
    /// Further request headers, sent as given.
    pub headers: Vec<(String, String)>,
}

/// How an answer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// An answer the workload did not expect (wrong status, bad body).
    Error,
}

/// What to send: built per slot, judged per answer. Implementations are
/// shared by every user, so they keep no per-request mutable state.
pub trait Workload: Send + Sync + 'static {
    /// A short name for reports (`ingest`, `cache`).
    fn name(&self) -> &'static str;
    /// The request for slot `n`.
    fn request(&self, n: u64) -> Request;
    /// Whether the answer to slot `n`'s request is what the contract says.
    fn judge(&self, n: u64, status: u16, body: &[u8]) -> Verdict;
    /// Sees each answered slot's latency (from its intended start) and
    /// verdict, after `judge`; `measured` is false in the warm-up. For
    /// workloads that break latency down further (per route); by default
    /// nothing.
    fn observe(&self, n: u64, latency: Duration, ok: bool, measured: bool) {
        let _ = (n, latency, ok, measured);
    }
}

/// Worker `index` of `of` processes sending one schedule together: it takes
/// slots `index`, `index + of`, `index + 2·of`, … of the whole run's
/// schedule (the whole run's rate), so N workers started together send
/// exactly the single-process schedule between them, and slot numbers —
/// hence generated ids — never repeat across workers. Their reports merge
/// exactly (`parallax load merge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worker {
    pub index: u64,
    pub of: u64,
}

impl Worker {
    /// The whole schedule.
    pub const ALONE: Worker = Worker { index: 0, of: 1 };

    /// The `k`-th slot this worker takes.
    pub fn slot(self, k: u64) -> u64 {
        k.saturating_mul(self.of).saturating_add(self.index)
    }

    /// How many of the schedule's `total` slots are this worker's.
    pub fn share_of(self, total: u64) -> u64 {
        if total <= self.index {
            0
        } else {
            (total - self.index).div_ceil(self.of)
        }
    }
}

/// Where and how fast to send.
#[derive(Debug, Clone)]
pub struct OpenConfig {
    /// `http://host:port` of the service (or of the proxy in front of it).
    pub base_url: String,
    pub schedule: Schedule,
    /// This process's share of the schedule when several processes or
    /// machines send one run together ([`Worker`]).
    pub worker: Worker,
    /// Slots due before this offset are sent but not measured.
    pub warmup: Duration,
    /// goose users, i.e. the most requests in flight at once.
    pub users: usize,
    /// A slot taken more than this after its time counts as late.
    pub late_after: Duration,
    /// A slot is released to a user this long before its time: room for
    /// the wake-up of the user's task (module docs).
    pub early_by: Duration,
    /// Per-request timeout (a timeout is an error, measured at its length).
    pub timeout: Duration,
    /// How long after the schedule's end slots may still be taken.
    pub overrun: Duration,
    /// Where goose writes its HTML report, if anywhere.
    pub html_report: Option<PathBuf>,
    /// Print a progress line to stderr once a second.
    pub progress: bool,
}

impl OpenConfig {
    pub fn new(base_url: impl Into<String>, schedule: Schedule) -> Self {
        Self {
            base_url: base_url.into(),
            schedule,
            worker: Worker::ALONE,
            warmup: Duration::ZERO,
            users: 64,
            late_after: Duration::from_millis(10),
            early_by: EARLY_BY,
            timeout: Duration::from_secs(10),
            overrun: Duration::from_secs(5),
            html_report: None,
            progress: false,
        }
    }

    fn validate(&self) -> Result<(), Error> {
        let s = &self.schedule;
        if !crate::positive(s.rate_per_sec) {
            return Err(Error::Config("the rate must be above zero".into()));
        }
        if s.duration <= self.warmup {
            return Err(Error::Config(format!(
                "the duration ({:?}) must be longer than the warm-up ({:?})",
                s.duration, self.warmup
            )));
        }
        if self.users == 0 {
            return Err(Error::Config("at least one user is needed".into()));
        }
        if !self.base_url.starts_with("http://") {
            return Err(Error::Config(format!(
                "the target {:?} must be an http:// URL",
                self.base_url
            )));
        }
        Ok(())
    }
}

/// One second of the measured run.
#[derive(Debug, Clone)]
pub struct Window {
    /// Seconds from the end of the warm-up to the window's start.
    pub t_secs: f64,
    pub errors: u64,
    pub latency_us: Histogram<u64>,
}

/// What an open-model run measured (warm-up excluded).
#[derive(Debug, Clone)]
pub struct OpenReport {
    pub target_rate_per_sec: f64,
    /// Latency from each slot's time, µs.
    pub latency_us: Histogram<u64>,
    /// Requests answered (or failed) after the warm-up.
    pub requests: u64,
    /// Units (events) those requests carried.
    pub units: u64,
    pub errors: u64,
    /// Measured slots taken later than `late_after`.
    pub late: u64,
    /// Slots never sent because the run passed its overrun.
    pub not_sent: u64,
    /// From the end of the warm-up to the last measured completion.
    pub measured_secs: f64,
    pub windows: Vec<Window>,
    /// The first few error messages, for the user.
    pub error_samples: Vec<String>,
}

impl OpenReport {
    pub fn achieved_rate(&self) -> f64 {
        per_sec(self.requests, self.measured_secs)
    }

    pub fn achieved_units_rate(&self) -> f64 {
        per_sec(self.units, self.measured_secs)
    }

    /// Whether the schedule was kept: at most `max_late_ratio` of the slots
    /// late, none left unsent, and the achieved rate within 5 % of target.
    pub fn held(&self, max_late_ratio: f64) -> bool {
        let late_ratio = self.late as f64 / self.requests.max(1) as f64;
        self.not_sent == 0
            && late_ratio <= max_late_ratio
            && self.achieved_rate() >= 0.95 * self.target_rate_per_sec
    }
}

fn per_sec(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// The default [`OpenConfig::early_by`]: about one wake-up of a parked
/// tokio worker on an idle VM, so a typical slot leaves on its time.
pub const EARLY_BY: Duration = Duration::from_micros(20);

/// Keep only this many error messages.
const ERROR_SAMPLES: usize = 5;
/// Users are started at once; the schedule begins this long after that so
/// every user is waiting for its first slot.
const START_GRACE: Duration = Duration::from_millis(1500);
/// How often an idle user (the schedule is over) checks whether to stop:
/// goose only stops a user between transactions.
const IDLE_POLL: Duration = Duration::from_millis(50);

/// The state every user shares. The mutex guards the histograms; it is held
/// for one record (no `.await` inside), and at the rates one goose process
/// reaches (tens of thousands of requests per second) it is not contended
/// enough to matter next to an HTTP round trip.
struct Shared<W> {
    workload: W,
    config: OpenConfig,
    start: Instant,
    /// Releases the slots; a user waits on it before taking one.
    metronome: Metronome,
    next: AtomicU64,
    /// Slots taken and not yet recorded.
    in_flight: AtomicU64,
    /// Set when this run pulled goose's stop switch itself.
    completed: AtomicBool,
    done: AtomicBool,
    stats: Mutex<Stats>,
}

struct Stats {
    latency_us: Histogram<u64>,
    /// From each measured slot's release (`early_by` before its time) to
    /// its send: the hand-off to a user, plus any wait for a free one.
    release_to_send_us: Histogram<u64>,
    requests: u64,
    units: u64,
    errors: u64,
    late: u64,
    taken: u64,
    last_done: Option<Instant>,
    windows: Vec<Window>,
    error_samples: Vec<String>,
}

/// Set once by [`interrupt`]: every later run refuses to start.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Stops the attack in progress (goose's stop switch) and refuses every
/// later one with [`Error::Interrupted`]: what a program that installs its
/// own Ctrl-C handler calls, so that between attacks an interrupt is not
/// lost when goose resets its switch at the next start.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    goose::trigger_killswitch("interrupted");
}

/// Runs `workload` on goose under `config` and returns what it measured.
pub async fn run<W: Workload>(workload: W, config: OpenConfig) -> Result<OpenReport, Error> {
    config.validate()?;
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(Error::Interrupted);
    }
    let total = config.worker.share_of(config.schedule.len());
    let start = Instant::now() + START_GRACE;
    // This worker's k-th slot is the schedule's `worker.slot(k)`.
    let (schedule, worker) = (config.schedule, config.worker);
    let metronome = Metronome::start_on_reactor(start.into_std(), config.early_by, move |k| {
        schedule.offset(worker.slot(k))
    })?;
    let shared = Arc::new(Shared {
        start,
        metronome,
        next: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        completed: AtomicBool::new(false),
        done: AtomicBool::new(false),
        stats: Mutex::new(Stats {
            latency_us: latency_histogram(),
            release_to_send_us: latency_histogram(),
            requests: 0,
            units: 0,
            errors: 0,
            late: 0,
            taken: 0,
            last_done: None,
            windows: Vec::new(),
            error_samples: Vec::new(),
        }),
        workload,
        config,
    });
    let attack = attack(Arc::clone(&shared))?;
    let progress = shared
        .config
        .progress
        .then(|| tokio::spawn(progress(Arc::clone(&shared))));
    let outcome = attack.execute().await;
    shared.done.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        let _ = p.await;
    }
    outcome.map_err(|e| Error::Goose(e.to_string()))?;
    // goose's switch was pulled, and not by us: Ctrl-C (goose catches it
    // and stops the attack), so the caller stops too instead of going on.
    let interrupted = INTERRUPTED.load(Ordering::SeqCst)
        || (goose::is_killswitch_triggered() && !shared.completed.load(Ordering::Relaxed));
    if interrupted {
        return Err(Error::Interrupted);
    }

    let config = &shared.config;
    let stats = shared.stats.lock();
    if config.progress {
        let h = &stats.release_to_send_us;
        let _ = writeln!(
            std::io::stderr(),
            "  pacing: sent {} µs (p50) / {} µs (p99) after each slot's release, {} µs before its time",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            config.early_by.as_micros(),
        );
    }
    let measured_start = shared.start + config.warmup;
    let measured_secs = stats
        .last_done
        .map(|d| d.saturating_duration_since(measured_start).as_secs_f64())
        .unwrap_or(0.0);
    Ok(OpenReport {
        // This worker's share of the run's rate.
        target_rate_per_sec: config.schedule.rate_per_sec / config.worker.of as f64,
        latency_us: stats.latency_us.clone(),
        requests: stats.requests,
        units: stats.units,
        errors: stats.errors,
        late: stats.late,
        not_sent: total.saturating_sub(stats.taken),
        measured_secs,
        windows: stats.windows.clone(),
        error_samples: stats.error_samples.clone(),
    })
}

/// The goose attack: one scenario, one transaction that keeps taking slots.
fn attack<W: Workload>(shared: Arc<Shared<W>>) -> Result<GooseAttack, Error> {
    let config = &shared.config;
    let goose = |e: GooseError| Error::Goose(e.to_string());
    // Users run until the schedule, its overrun and the slowest answer are
    // over; goose then stops them all.
    let run_time = START_GRACE + config.schedule.duration + config.overrun + config.timeout;
    let name = shared.workload.name();
    let step_state = Arc::clone(&shared);
    let step: TransactionFunction = Arc::new(move |user| {
        let shared = Arc::clone(&step_state);
        Box::pin(async move { shared.step(user).await })
    });
    let scenario = Scenario::new(name).register_transaction(Transaction::new(step).set_name(name));
    let client = GooseClientBuilder::new()
        .without_cookies()
        .timeout(config.timeout)
        .user_agent("parallax-load");
    let mut attack = GooseAttack::initialize_with_config(GooseConfiguration::default())
        .map_err(goose)?
        .register_scenario(scenario)
        .set_client_builder_without_cookies(client)
        .map_err(goose)?
        .set_default(GooseDefault::Host, config.base_url.as_str())
        .map_err(goose)?
        .set_default(GooseDefault::Users, config.users)
        .map_err(goose)?
        .set_default(
            GooseDefault::IncreaseRate,
            config.users.to_string().as_str(),
        )
        .map_err(goose)?
        .set_default(GooseDefault::RunTime, run_time.as_secs() as usize + 1)
        .map_err(goose)?
        .set_default(GooseDefault::NoResetMetrics, true)
        .map_err(goose)?
        .set_default(GooseDefault::NoPrintMetrics, true)
        .map_err(goose)?
        .set_default(GooseDefault::Quiet, 1usize)
        .map_err(goose)?
        .set_default(GooseDefault::NoTelnet, true)
        .map_err(goose)?
        .set_default(GooseDefault::WebSocket, false)
        .map_err(goose)?;
    if let Some(path) = &config.html_report {
        attack = attack
            .set_default(GooseDefault::ReportFile, path.to_string_lossy().as_ref())
            .map_err(goose)?;
    }
    Ok(*attack)
}

impl<W: Workload> Shared<W> {
    /// One goose transaction: take a slot, wait for it, send, record. When
    /// the schedule is over the user idles until goose stops it.
    async fn step(&self, user: &mut GooseUser) -> TransactionResult {
        let config = &self.config;
        let stop_taking = self.start + config.schedule.duration + config.overrun;
        // Counted in flight before taking a slot, so a user that finds the
        // schedule empty never sees zero while another holds a slot.
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.metronome.tick().await;
        let n = config
            .worker
            .slot(self.next.fetch_add(1, Ordering::Relaxed));
        let result = match config.schedule.offset(n) {
            Some(offset) if Instant::now() < stop_taking => self.send(user, n, offset).await,
            _ => Ok(()),
        };
        let remaining = self.in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
        let exhausted = config.schedule.offset(n).is_none() || Instant::now() >= stop_taking;
        if exhausted {
            // Every slot is taken; once none is in flight, stop goose
            // instead of letting it wait out its run time.
            if remaining == 0 {
                self.completed.store(true, Ordering::Relaxed);
                goose::trigger_killswitch("the schedule is complete");
            }
            tokio::time::sleep(IDLE_POLL).await;
        }
        result
    }

    /// Sends slot `n` (released by the metronome: due now, or at most
    /// `early_by` from now) and records its answer.
    async fn send(&self, user: &mut GooseUser, n: u64, offset: Duration) -> TransactionResult {
        let config = &self.config;
        let due = self.start + offset;
        let sent = Instant::now();
        let measured = offset >= config.warmup;
        let late = measured && sent > due + config.late_after;

        let request = self.workload.request(n);
        let units = request.units;
        let mut builder = user.get_request_builder(&request.method, &request.path)?;
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        if let Some(content_type) = request.content_type {
            builder = builder.header("content-type", content_type);
        }
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let name = self.workload.name();
        let goose_request = GooseRequest::builder()
            .method(request.method)
            .path(request.path.as_str())
            .name(name)
            .set_request_builder(builder)
            .build();
        let answer = user.request(goose_request).await?;
        let (status, verdict, error) = match answer.response {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(body) => (
                        Some(status),
                        self.workload.judge(n, status, &body),
                        (status >= 400).then(|| format!("HTTP {status}")),
                    ),
                    Err(e) => (Some(status), Verdict::Error, Some(e.to_string())),
                }
            }
            Err(e) => (None, Verdict::Error, Some(e.to_string())),
        };
        let done = Instant::now();
        let latency = done.saturating_duration_since(due.min(sent));
        let ok = verdict == Verdict::Ok;
        self.workload.observe(n, latency, ok, measured);
        let handed =
            sent.saturating_duration_since(due.checked_sub(config.early_by).unwrap_or(due));
        self.record(
            offset, measured, late, units, ok, latency, handed, done, error,
        );
        user.record_custom_request_duration(
            "SLOT",
            &format!("slot:{name}"),
            latency,
            ok,
            status,
            None,
        )
        .await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        offset: Duration,
        measured: bool,
        late: bool,
        units: u64,
        ok: bool,
        latency: Duration,
        handed: Duration,
        done: Instant,
        error: Option<String>,
    ) {
        let mut stats = self.stats.lock();
        stats.taken += 1;
        if !measured {
            return;
        }
        let us = (latency.as_micros() as u64).clamp(1, stats.latency_us.high());
        stats.latency_us.saturating_record(us);
        let handed_us = (handed.as_micros() as u64).max(1);
        stats.release_to_send_us.saturating_record(handed_us);
        stats.requests += 1;
        stats.units += units;
        stats.late += u64::from(late);
        stats.last_done = stats.last_done.max(Some(done));
        let second = (offset - self.config.warmup).as_secs() as usize;
        while stats.windows.len() <= second {
            let t_secs = stats.windows.len() as f64;
            stats.windows.push(Window {
                t_secs,
                errors: 0,
                latency_us: latency_histogram(),
            });
        }
        let window = &mut stats.windows[second];
        window.latency_us.saturating_record(us);
        if !ok {
            window.errors += 1;
            stats.errors += 1;
            if stats.error_samples.len() < ERROR_SAMPLES {
                let message = error.unwrap_or_else(|| "unexpected answer".to_owned());
                stats.error_samples.push(message);
            }
        }
    }
}

/// Prints achieved rate, errors, late slots and p99 so far, once a second.
async fn progress<W: Workload>(shared: Arc<Shared<W>>) {
    let mut tick = tokio::time::interval_at(
        shared.start + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let mut last = 0u64;
    while !shared.done.load(Ordering::Relaxed) {
        tick.tick().await;
        let (taken, requests, errors, late, p99) = {
            let s = shared.stats.lock();
            (
                s.taken,
                s.requests,
                s.errors,
                s.late,
                s.latency_us.value_at_quantile(0.99),
            )
        };
        let elapsed = shared.start.elapsed().as_secs();
        let _ = writeln!(
            std::io::stderr(),
            "  [{:>3}s] {}: {} req/s (target {:.0}), measured {requests}, errors {errors}, late {late}, p99 so far {:.2} ms",
            elapsed,
            shared.workload.name(),
            taken - last,
            shared.config.schedule.rate_per_sec,
            p99 as f64 / 1000.0,
        );
        last = taken;
    }
}

/// Shared workloads: one per run, several runs (warm-up, measured phases).
impl<W: Workload> Workload for Arc<W> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn request(&self, n: u64) -> Request {
        (**self).request(n)
    }
    fn judge(&self, n: u64, status: u16, body: &[u8]) -> Verdict {
        (**self).judge(n, status, body)
    }
    fn observe(&self, n: u64, latency: Duration, ok: bool, measured: bool) {
        (**self).observe(n, latency, ok, measured)
    }
}

/// A workload whose slot numbers start at `first` (so a warm-up and the
/// measured phases of one run never send the same event ids).
pub struct Offset<W> {
    pub workload: W,
    pub first: u64,
}

impl<W: Workload> Workload for Offset<W> {
    fn name(&self) -> &'static str {
        self.workload.name()
    }
    fn request(&self, n: u64) -> Request {
        self.workload.request(self.first + n)
    }
    fn judge(&self, n: u64, status: u16, body: &[u8]) -> Verdict {
        self.workload.judge(self.first + n, status, body)
    }
    fn observe(&self, n: u64, latency: Duration, ok: bool, measured: bool) {
        self.workload.observe(self.first + n, latency, ok, measured)
    }
}
