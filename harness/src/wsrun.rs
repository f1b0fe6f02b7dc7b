//! Runs an experiment whose traffic holds WebSocket sessions
//! (`[traffic.websocket]`): the sessions stay open while the request
//! templates make the server publish, and every frame a session receives is
//! timed from its `published_at_unix_us`.
//!
//! Two halves, as the fan-out comparison needs:
//! - **performance**, in every mode: each backend holds `clients` sessions
//!   (in worker processes, [`crate::fleet`]) for the whole step, and the
//!   publish requests go to one backend at a time, open-model, in short
//!   blocks alternating between them as the HTTP runner's direct mode does
//!   (A B B A, or a seeded order: [`crate::interleave`]); block k of each
//!   gets the same publishes. The sessions stay open across blocks — a
//!   backend between its blocks only holds idle sessions — so splitting the
//!   step costs no reconnects. Nothing but the schedule tells the two
//!   backends apart: their sessions open at the same time, each warm-up's
//!   frames are awaited as a block's are, and the warm-ups run in the order
//!   that makes each backend's blocks follow their own as often as the
//!   other's ([`interleave::warm_up_order`]); each block's p50/p99 is kept
//!   in the backend's timeline. Each publish is a broadcast, expected to
//!   reach every session once; its backend's latency is the delivery
//!   latency of those frames (receive time minus the publisher's stamp),
//!   and a frame that never arrives is an error.
//! - **capacity** (`--find-capacity`): the same blocks as probes, each
//!   backend's search ([`crate::capacity`]) over the publish rate, probes
//!   interleaved; a rate holds when the delivery latency keeps the SLO and
//!   late publishes plus lost broadcasts stay under the late share.
//! - **correctness**, in shadow and A/A mode: `shadow_clients` sessions
//!   connect through `parallax proxy` (the baseline's frames go to the
//!   client, the candidate's are paired with them by the proxy's
//!   `ws_match`), and the publish requests go through the proxy too, so
//!   each reaches both backends with the same id and stamp. One publisher
//!   sends them: publishes sent concurrently have no defined order, and the
//!   two backends could then deliver them in different orders legitimately.
//!   The proxy's frame counters become the comparison: matched, and missing,
//!   extra, different or reordered as mismatches.
//!
//! The runner ([`crate::runner`]) starts and stops the backends and calls
//! [`run`] with what it measures them by.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use parallax_loadgen::open::{self, Offset, OpenConfig, OpenReport};
use parallax_loadgen::pacing::Schedule;
use parallax_report::{
    BackendCapacity, BackendResult, Capacity, CapacityProbe, Comparison, LatencySummary, Role,
    ScenarioResult, Window,
};

use crate::capacity;
use crate::child::{ChildProcess, ChildSpec, Readiness};
use crate::experiment::{Experiment, ModeName, Step};
use crate::fleet::{Fleet, FleetSpec};
use crate::interleave::{self, Order};
use crate::prom;
use crate::proxyconf::{self, ProxyService};
use crate::runner::WARMUP_FIRST_SLOT;
use crate::traffic::{TemplateWorkload, WebSocketTraffic};

/// A backend the runner started (or found), as this module needs it.
pub(crate) struct Backend<'a> {
    pub label: &'a str,
    pub role: Role,
    pub language: &'a str,
    /// `host:port`.
    pub addr: &'a str,
    pub pid: Option<u32>,
    /// CPU-seconds so far (`None`: not measured).
    pub cpu: Box<dyn Fn() -> Option<f64> + 'a>,
    /// Peak RSS so far (`None`: not measured).
    pub peak_rss: Box<dyn Fn() -> Option<u64> + 'a>,
    /// Where CPU and RSS come from, for the results.
    pub accounting: String,
}

/// What the whole experiment shares.
pub(crate) struct Env<'a> {
    pub experiment: &'a Experiment,
    pub name: &'a str,
    /// The publish requests.
    pub workload: Arc<TemplateWorkload>,
    pub warmup: f64,
    /// Where logs and goose reports go.
    pub out: &'a Path,
    /// The `parallax` binary (the proxy and the session workers).
    pub exe: &'a Path,
    pub mode: ModeName,
    /// Fails when a backend died during the run.
    pub alive: &'a dyn Fn() -> anyhow::Result<()>,
    /// The length of one block, and their order.
    pub block_secs: f64,
    pub order: Order,
    /// Look for each backend's capacity instead of one rate.
    pub capacity: Option<capacity::Plan>,
}

/// How long sessions may take to receive what was published, after the
/// last publish.
const PATIENCE: Duration = Duration::from_secs(30);

/// The proxy's frame results that are mismatches.
const FRAME_MISMATCHES: [&str; 4] = ["missing", "extra", "different", "reordered"];

/// One result per step: each backend alone, then (unless direct) the
/// mirrored session through the proxy.
pub(crate) fn run(
    env: &Env,
    backends: &[Backend],
    ws: &WebSocketTraffic,
    steps: &[Step],
) -> anyhow::Result<Vec<ScenarioResult>> {
    if let Some(plan) = env.capacity {
        return capacity_search(env, backends, ws, steps, plan);
    }
    let mut results = Vec::new();
    for (k, step) in steps.iter().enumerate() {
        let name = if steps.len() > 1 {
            format!("{}@{}/s", env.name, step.rate)
        } else {
            env.name.to_owned()
        };
        let warmup = if k == 0 { env.warmup } else { 0.0 };
        let budgets = env.experiment.budgets;
        let mut scenario = ScenarioResult {
            scenario: name.clone(),
            unit: if env.experiment.unit == "requests" {
                "deliveries".into()
            } else {
                env.experiment.unit.clone()
            },
            target_rate_per_sec: step.rate * ws.clients as f64,
            duration_secs: step.duration_secs,
            warmup_secs: warmup,
            backends: Vec::new(),
            comparison: None,
            notes: vec![format!(
                "publishes to each backend alone in turn: {} WebSocket sessions on {} from {} source addresses, {} publishes/s; latency = receive time − published_at_unix_us, stamped by the publisher",
                ws.clients, ws.path, ws.sources, step.rate
            )],
            routes: Vec::new(),
            budgets: (budgets != Default::default()).then_some(budgets),
            capacity: None,
            noise: None,
        };
        let first = (k as u64) << 36;
        let (rows, notes) = interleaved(env, backends, ws, step, warmup, first, &name)?;
        scenario.backends = rows;
        scenario.notes.extend(notes);
        if env.mode != ModeName::Direct {
            let (comparison, note) = mirrored(env, backends, ws, step, first + (3 << 34))
                .with_context(|| format!("{name}: the mirrored session"))?;
            (env.alive)()?;
            scenario.comparison = Some(comparison);
            scenario.notes.push(note);
        }
        results.push(scenario);
    }
    Ok(results)
}

fn spec(env: &Env, ws: &WebSocketTraffic, server: &str) -> anyhow::Result<FleetSpec> {
    let server = server
        .parse()
        .with_context(|| format!("{server} is not an IP address and port"))?;
    let mut spec = FleetSpec::new(env.exe.to_owned(), server);
    spec.headers = ws
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    spec.messages = ws.messages.clone();
    spec.per_worker = ws.per_worker;
    spec.sources = ws.sources;
    Ok(spec)
}

fn open_config(env: &Env, url: &str, rate: f64, secs: f64, users: usize) -> OpenConfig {
    let load = &env.experiment.load;
    let mut c = OpenConfig::new(
        url,
        Schedule {
            rate_per_sec: rate,
            ramp: Duration::ZERO,
            duration: Duration::from_secs_f64(secs),
            max_requests: u64::MAX,
        },
    );
    c.users = users;
    c.timeout = Duration::from_millis(load.timeout_ms);
    c
}

fn publish(env: &Env, first: u64, config: OpenConfig) -> anyhow::Result<OpenReport> {
    let w = Offset {
        workload: Arc::clone(&env.workload),
        first,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(open::run(w, config))?)
}

/// One backend's sessions, held for a whole step or search.
struct Sessions<'a> {
    backend: &'a Backend<'a>,
    fleet: Fleet,
}

impl<'a> Sessions<'a> {
    /// Each backend's `clients` sessions, all opened at the same time
    /// ([`Fleet::connect_together`]): opened one backend after the other,
    /// the first backend's would be older and its connect work done while
    /// the second idled.
    fn open_all(
        env: &Env,
        backends: &'a [Backend<'a>],
        ws: &WebSocketTraffic,
        name: &str,
    ) -> anyhow::Result<Vec<Self>> {
        let backends = &backends[..backends.len().min(2)];
        let mut specs = Vec::new();
        for b in backends {
            eprintln!("{name}: {} sessions on {}", ws.clients, b.label);
            specs.push((spec(env, ws, b.addr)?, ws.path.clone(), ws.clients));
        }
        let fleets = Fleet::connect_together(specs).with_context(|| format!("{name}: sessions"))?;
        backends
            .iter()
            .zip(fleets)
            .map(|(backend, fleet)| {
                if fleet.connected() == 0 {
                    bail!(
                        "{name}: {}: no WebSocket session opened on {}{} ({} failed; first error: {})",
                        backend.label,
                        backend.addr,
                        ws.path,
                        fleet.failed(),
                        fleet.first_error().unwrap_or_default()
                    );
                }
                Ok(Self { backend, fleet })
            })
            .collect()
    }

    fn count(&self) -> u64 {
        self.fleet.connected() as u64
    }

    fn note(&self) -> String {
        format!(
            "{}: {} sessions open ({} failed{})",
            self.backend.label,
            self.count(),
            self.fleet.failed(),
            self.fleet
                .first_error()
                .map(|e| format!(", first: {e}"))
                .unwrap_or_default(),
        )
    }
}

/// What one backend's blocks added up to.
struct Blocks {
    latency: Histogram<u64>,
    /// Failed publishes plus lost frames.
    errors: u64,
    /// Lost frames (broadcasts that did not reach every session).
    missing: u64,
    late: u64,
    secs: f64,
    publishes: u64,
    /// `None` once a reading failed.
    cpu: Option<f64>,
}

impl Default for Blocks {
    fn default() -> Self {
        Self {
            latency: parallax_loadgen::pacing::latency_histogram(),
            errors: 0,
            missing: 0,
            late: 0,
            secs: 0.0,
            publishes: 0,
            cpu: Some(0.0),
        }
    }
}

/// How often the sessions are asked whether the frames arrived.
const FRAMES_POLL: Duration = Duration::from_millis(100);

/// One block: publishes to `side`'s backend alone at `rate` for `secs`,
/// then waits for their frames; added to `acc`. The publish report and the
/// block's own window (`t_secs` 0: the caller places it).
#[allow(clippy::too_many_arguments)]
fn block(
    env: &Env,
    side: &mut Sessions,
    rate: f64,
    secs: f64,
    first: u64,
    users: usize,
    late_after: Option<Duration>,
    acc: &mut Blocks,
) -> anyhow::Result<(OpenReport, Window)> {
    let b = side.backend;
    side.fleet.reset()?;
    let cpu_before = (b.cpu)();
    let mut c = open_config(env, &format!("http://{}", b.addr), rate, secs, users);
    if let Some(late_after) = late_after {
        c.late_after = late_after;
    }
    let report = publish(env, first, c)?;
    (env.alive)()?;
    let expected = report.requests.saturating_sub(report.errors) * side.count();
    let deadline = std::time::Instant::now() + PATIENCE;
    let latency = loop {
        let latency = side.fleet.latency()?;
        if latency.len() >= expected || std::time::Instant::now() >= deadline {
            break latency;
        }
        std::thread::sleep(FRAMES_POLL);
    };
    acc.cpu = match (acc.cpu, cpu_before, (b.cpu)()) {
        (Some(sum), Some(a), Some(z)) => Some(sum + (z - a).max(0.0)),
        _ => None,
    };
    let missing = expected.saturating_sub(latency.len());
    let window = Window::from_histogram(0.0, &latency, report.errors + missing);
    acc.latency.add(&latency)?;
    acc.missing += missing;
    acc.errors += report.errors + missing;
    acc.late += report.late + report.not_sent;
    acc.secs += report.measured_secs;
    acc.publishes += report.requests;
    Ok((report, window))
}

/// Publishes at `rate` for `secs` to `side` on warm-up slots, unmeasured,
/// as a block is run: its frames have all arrived (or [`PATIENCE`] ran
/// out) when it returns, so no warm-up is still being delivered while the
/// next backend's block is measured.
fn warm(env: &Env, side: &mut Sessions, rate: f64, secs: f64, first: u64) -> anyhow::Result<()> {
    let users = env.experiment.load.connections;
    let mut unmeasured = Blocks::default();
    block(
        env,
        side,
        rate,
        secs,
        WARMUP_FIRST_SLOT + first,
        users,
        None,
        &mut unmeasured,
    )
    .context("warm-up")?;
    Ok(())
}

/// Both backends' sessions held for the step; publishes in interleaved
/// blocks. Each backend's result and notes.
fn interleaved(
    env: &Env,
    backends: &[Backend],
    ws: &WebSocketTraffic,
    step: &Step,
    warmup: f64,
    first: u64,
    name: &str,
) -> anyhow::Result<(Vec<BackendResult>, Vec<String>)> {
    let mut sides = Sessions::open_all(env, backends, ws, name)?;
    let (pairs, block_secs) = interleave::split(step.duration_secs, env.block_secs);
    let block_slots = (step.rate * block_secs).ceil() as u64;
    let schedule = interleave::schedule(pairs, env.order);
    let warm_order = interleave::warm_up_order(&schedule);
    if warmup > 0.0 {
        for i in warm_order {
            let side = &mut sides[i];
            eprintln!("{name}: warm-up, {} alone", side.backend.label);
            warm(env, side, step.rate, warmup / 2.0, first)?;
        }
    }
    let users = env.experiment.load.connections;
    let mut acc = [Blocks::default(), Blocks::default()];
    // Each block's own latency, for the timeline (as the HTTP runner's,
    // on the backend's own measured seconds, so block k of both backends
    // sits at the same t): a whole-run percentile hides which block a tail
    // came from.
    let mut timelines: [Vec<Window>; 2] = Default::default();
    for (n, b) in schedule.iter().enumerate() {
        let side = &mut sides[b.backend];
        eprintln!(
            "{name}: block {} of {} ({block_secs:.1} s, {} publishes/s): {} alone",
            n + 1,
            schedule.len(),
            step.rate,
            side.backend.label
        );
        let slot = first + b.index as u64 * block_slots;
        let t_secs = acc[b.backend].secs;
        let cpu_before = acc[b.backend].cpu;
        let (_, window) = block(
            env,
            side,
            step.rate,
            block_secs,
            slot,
            users,
            None,
            &mut acc[b.backend],
        )
        .with_context(|| format!("{name}: {}", side.backend.label))?;
        eprintln!(
            "{name}: block {}: {} deliveries, p50 {}, p99 {}, {}",
            n + 1,
            window.requests,
            fmt_us(window.p50_us),
            fmt_us(window.p99_us),
            match (cpu_before, acc[b.backend].cpu) {
                (Some(a), Some(z)) if window.requests > 0 => format!(
                    "{:.2} µs of CPU per delivery",
                    (z - a) * 1e6 / window.requests as f64
                ),
                _ => "CPU not measured".to_owned(),
            }
        );
        timelines[b.backend].push(Window { t_secs, ..window });
    }
    let order: String = schedule
        .iter()
        .take(16)
        .map(|b| if b.backend == 0 { 'A' } else { 'B' })
        .collect();
    let mut notes = vec![format!(
        "interleaved: A = {}, B = {}, each backend's {} sessions opened together and open throughout, publishes to one backend at a time in {pairs} blocks of {block_secs:.2} s each, order {order}{} ({}){}; block k of each gets the same publishes; each block's p50/p99 in the timeline (t = the backend's measured seconds before it)",
        sides[0].backend.label,
        sides[1].backend.label,
        ws.clients,
        if schedule.len() > 16 { "…" } else { "" },
        match env.order {
            Order::Abba => "A B B A repeated".to_owned(),
            Order::Random(seed) => format!("each pair's order by a coin seeded {seed}"),
        },
        if warmup > 0.0 {
            format!(
                ", after warm-ups of {:.1} s, {} then {} (each backend's blocks follow their own as often as the other's)",
                warmup / 2.0,
                sides[warm_order[0]].backend.label,
                sides[warm_order[1]].backend.label
            )
        } else {
            String::new()
        },
    )];
    let mut results = Vec::new();
    for ((side, a), timeline) in sides.iter().zip(&acc).zip(timelines) {
        let expected = a.latency.len() + a.missing;
        notes.push(format!(
            "{}, {} publishes, {} of {expected} frames arrived",
            side.note(),
            a.publishes,
            a.latency.len()
        ));
        results.push(BackendResult {
            timeline,
            ..backend_result(side.backend, &a.latency, a.secs, a.errors, a.late, a.cpu)
        });
    }
    Ok((results, notes))
}

/// Capacity at an SLO over the publish rate: each backend's search, probes
/// interleaved (A B, then B A, …), both backends' sessions open throughout.
/// The rows are both backends at the highest rate both held.
fn capacity_search(
    env: &Env,
    backends: &[Backend],
    ws: &WebSocketTraffic,
    steps: &[Step],
    plan: capacity::Plan,
) -> anyhow::Result<Vec<ScenarioResult>> {
    let probe_secs = steps.first().map_or(5.0, |s| s.duration_secs);
    let warm_secs = env.warmup.min(1.0);
    let mut sides = Sessions::open_all(env, backends, ws, env.name)?;
    let mut searches = [capacity::Search::new(plan), capacity::Search::new(plan)];
    let mut probes: [Vec<CapacityProbe>; 2] = Default::default();
    let mut kept: [Vec<(f64, Blocks)>; 2] = Default::default();
    let bound_secs = plan.slo.below_us as f64 / 1e6;
    for round in 0.. {
        let first = match env.order {
            Order::Abba => round % 2,
            order => interleave::schedule(round + 1, order)[2 * round].backend,
        };
        let mut any = false;
        for i in [first, 1 - first] {
            let Some(rate) = searches[i].next_rate() else {
                continue;
            };
            any = true;
            let side = &mut sides[i];
            let slot = (rate.round() as u64) << 24;
            if warm_secs > 0.0 {
                warm(env, side, rate, warm_secs, slot)?;
            }
            // Publishers enough that Little's law never limits the rate.
            let users = ((rate * bound_secs * 2.0).ceil() as usize)
                .clamp(env.experiment.load.connections.max(1), 2000);
            // As the HTTP search: late once sent half the SLO's bound after
            // its time (a busy machine's scheduler jitter exceeds 10 ms).
            let late_after =
                Duration::from_secs_f64(bound_secs / 2.0).max(Duration::from_millis(10));
            let mut acc = Blocks::default();
            let (report, _) = block(
                env,
                side,
                rate,
                probe_secs,
                slot,
                users,
                Some(late_after),
                &mut acc,
            )?;
            let h = &acc.latency;
            let at_q = if h.is_empty() {
                u64::MAX
            } else {
                h.value_at_quantile(plan.slo.quantile)
            };
            let slots = report.requests + report.not_sent;
            // Lost frames count as failed publishes: a broadcast that did
            // not reach every session failed.
            let sessions = side.count().max(1);
            let failed = report.errors + acc.missing.div_ceil(sessions);
            let held = plan.holds(slots, acc.late, failed, at_q);
            searches[i].record(rate, held);
            let s = LatencySummary::from_histogram(h);
            eprintln!(
                "{}: {} at {rate} publishes/s ({:.0} deliveries/s): {} {}, {} late, {} failed of {slots}, {} frames lost: {}",
                env.name,
                side.backend.label,
                rate * sessions as f64,
                plan.slo,
                fmt_us(at_q),
                acc.late,
                report.errors,
                acc.missing,
                if held { "held" } else { "not held" }
            );
            probes[i].push(CapacityProbe {
                rate_per_sec: rate,
                requests: report.requests,
                late: acc.late,
                errors: failed,
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
    let mut rows = Vec::new();
    for (i, side) in sides.iter().enumerate() {
        let k = &mut kept[i];
        let at = k.iter().position(|(r, _)| *r == row_rate).unwrap_or(0);
        let a = if k.is_empty() {
            Blocks::default()
        } else {
            k.swap_remove(at).1
        };
        rows.push(backend_result(
            side.backend,
            &a.latency,
            a.secs,
            a.errors,
            a.late,
            a.cpu,
        ));
    }
    let sessions = sides[0].count();
    let budgets = env.experiment.budgets;
    let cap_backends: Vec<BackendCapacity> = (0..2)
        .map(|i| BackendCapacity {
            name: sides[i].backend.label.to_owned(),
            capacity_per_sec: searches[i].capacity(),
            at_least: searches[i].at_least(),
            probes: std::mem::take(&mut probes[i]),
        })
        .collect();
    let cap = |i: usize| {
        cap_backends[i]
            .capacity_per_sec
            .map_or("none held".to_owned(), |c| {
                format!(
                    "{}{c} publishes/s",
                    if cap_backends[i].at_least { ">= " } else { "" }
                )
            })
    };
    let mut notes = vec![format!(
        "capacity at {} of delivery latency with under {}% late publishes or lost broadcasts ({}, {probe_secs} s probes after {warm_secs} s warm-up, publishes to one backend at a time, probes interleaved, {} sessions per backend open throughout): {} {}, {} {}; the rows are both at {row_rate} publishes/s, {}",
        plan.slo,
        plan.max_late_ratio * 100.0,
        if plan.bisect { "ladder up, then bisection" } else { "ladder" },
        ws.clients,
        sides[0].backend.label,
        cap(0),
        sides[1].backend.label,
        cap(1),
        if common.is_some() { "the highest rate both held" } else { "the first rate tried (no rate was held by both)" }
    )];
    notes.extend(sides.iter().map(Sessions::note));
    Ok(vec![ScenarioResult {
        scenario: env.name.to_owned(),
        unit: "deliveries".into(),
        target_rate_per_sec: row_rate * sessions as f64,
        duration_secs: probe_secs,
        warmup_secs: warm_secs,
        backends: rows,
        comparison: None,
        notes,
        routes: Vec::new(),
        budgets: (budgets != Default::default()).then_some(budgets),
        capacity: Some(Capacity {
            slo: plan.slo.to_string(),
            max_late_ratio: plan.max_late_ratio,
            method: if plan.bisect { "search" } else { "ladder" }.into(),
            backends: cap_backends,
        }),
        noise: None,
    }])
}

fn fmt_us(us: u64) -> String {
    if us == u64::MAX {
        "n/a".into()
    } else if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

fn backend_result(
    b: &Backend,
    latency: &Histogram<u64>,
    measured_secs: f64,
    errors: u64,
    late: u64,
    cpu_seconds: Option<f64>,
) -> BackendResult {
    BackendResult {
        cpu_seconds,
        peak_rss_bytes: (b.peak_rss)(),
        accounting: Some(b.accounting.clone()),
        ..crate::runner::measured(
            b.label,
            b.language,
            b.role,
            latency,
            measured_secs,
            errors,
            late,
        )
    }
}

/// Sessions and publishes through the proxy; the frame comparison.
fn mirrored(
    env: &Env,
    backends: &[Backend],
    ws: &WebSocketTraffic,
    step: &Step,
    first: u64,
) -> anyhow::Result<(Comparison, String)> {
    let free = || -> anyhow::Result<String> {
        let l =
            std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
        Ok(l.local_addr()?.to_string())
    };
    let (listen, admin) = (free()?, free()?);
    let mut service = ProxyService::new(env.name, &listen, backends[0].addr, backends[1].addr);
    service.pids = [backends[0].pid, backends[1].pid, None];
    service.ws_match = Some(ws.match_by.clone());
    service.compare = env.experiment.compare.clone();
    service.routes = env.experiment.routes.clone();
    let config = env.out.join("proxy-ws.toml");
    std::fs::write(&config, proxyconf::render(&admin, &[service])?)?;
    let mut proxy = ChildSpec::new("parallax proxy", env.exe, env.out.join("proxy-ws.log"));
    proxy.args = vec![
        "proxy".into(),
        "--config".into(),
        config.display().to_string(),
    ];
    proxy.ready = Readiness::Http {
        addr: admin.clone(),
        path: "/healthz".into(),
    };
    proxy.ready_timeout = Duration::from_secs(20);
    let proxy = ChildProcess::spawn(&proxy)?;
    let clients = ws.shadow_clients();
    let fleet = Fleet::connect(spec(env, ws, &listen)?, &ws.path, clients)?;
    eprintln!(
        "{}: {} sessions through the proxy ({} primary, {} shadow)",
        env.name,
        fleet.connected(),
        backends[0].label,
        backends[1].label
    );
    std::thread::sleep(Duration::from_secs(1));
    let frames = |admin: &str| -> anyhow::Result<Vec<prom::Sample>> {
        let (status, body) = crate::child::http_get(admin, "/metrics", Duration::from_secs(10))?;
        if status != 200 {
            bail!("proxy admin /metrics answered {status}");
        }
        Ok(prom::parse(&String::from_utf8_lossy(&body)))
    };
    let before = frames(&admin)?;
    // One publisher (see the module doc), for half the step.
    let secs = (step.duration_secs / 2.0).max(1.0);
    let report = publish(
        env,
        first,
        open_config(env, &format!("http://{listen}"), step.rate, secs, 1),
    )?;
    // Let the match window close on the last frames.
    std::thread::sleep(Duration::from_secs(3));
    let after = frames(&admin)?;
    drop(fleet);
    proxy.stop(Duration::from_secs(10));
    let count = |result: &str| -> u64 {
        let filter = [("service", env.name), ("result", result)];
        let n = prom::sum(&after, "parallax_ws_frames_total", &filter).unwrap_or(0.0)
            - prom::sum(&before, "parallax_ws_frames_total", &filter).unwrap_or(0.0);
        n.max(0.0) as u64
    };
    let matched = count("matched");
    let classes = FRAME_MISMATCHES
        .iter()
        .map(|r| (r.to_string(), count(r)))
        .filter(|(_, n)| *n > 0)
        .collect::<std::collections::BTreeMap<_, _>>();
    let mismatched: u64 = classes.values().sum();
    let comparison = Comparison {
        compared: matched + mismatched,
        matched,
        mismatched,
        noise: 0,
        dropped: count("overflow") + count("unresolved"),
        classes,
        kafka: None,
        differences: Vec::new(),
        samples: Vec::new(),
    };
    let note = format!(
        "mirrored sessions: {clients} through parallax proxy, {} publishes through it; frames paired by {}: {matched} matched, {} missing, {} extra, {} different, {} reordered",
        report.requests,
        ws.match_by,
        count("missing"),
        count("extra"),
        count("different"),
        count("reordered"),
    );
    Ok((comparison, note))
}
