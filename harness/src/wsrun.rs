//! Runs an experiment whose traffic holds WebSocket sessions
//! (`[traffic.websocket]`): the sessions stay open while the request
//! templates make the server publish, and every frame a session receives is
//! timed from its `published_at_unix_us`.
//!
//! Two halves, as the fan-out comparison needs:
//! - **performance**, in every mode: each backend alone in turn holds
//!   `clients` sessions (in worker processes, [`crate::fleet`]) while the
//!   publish requests go to it at the step's rate, open-model. Each publish
//!   is a broadcast, expected to reach every session once; its backend's
//!   latency is the delivery latency of those frames (receive time minus the
//!   publisher's stamp), and a frame that never arrives is an error.
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
use parallax_report::{BackendResult, Comparison, Role, ScenarioResult};

use crate::child::{ChildProcess, ChildSpec, Readiness};
use crate::experiment::{Experiment, ModeName, Step};
use crate::fleet::{Fleet, FleetSpec};
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
                "each backend alone in turn: {} WebSocket sessions on {} from {} source addresses, {} publishes/s; latency = receive time − published_at_unix_us, stamped by the publisher",
                ws.clients, ws.path, ws.sources, step.rate
            )],
            routes: Vec::new(),
            budgets: (budgets != Default::default()).then_some(budgets),
            capacity: None,
            noise: None,
        };
        let first = (k as u64) << 36;
        for (i, b) in backends.iter().take(2).enumerate() {
            eprintln!(
                "{name}: {} alone, {} sessions, {} publishes/s for {} s",
                b.label, ws.clients, step.rate, step.duration_secs
            );
            let (result, note) = alone(env, b, ws, step, warmup, first + ((i as u64) << 34))
                .with_context(|| format!("{name}: {}", b.label))?;
            (env.alive)()?;
            scenario.backends.push(result);
            scenario.notes.push(note);
        }
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

/// Sessions on one backend alone; its result and a note.
fn alone(
    env: &Env,
    b: &Backend,
    ws: &WebSocketTraffic,
    step: &Step,
    warmup: f64,
    first: u64,
) -> anyhow::Result<(BackendResult, String)> {
    let mut fleet = Fleet::connect(spec(env, ws, b.addr)?, &ws.path, ws.clients)?;
    if fleet.connected() == 0 {
        bail!(
            "no WebSocket session opened on {}{} ({} failed; first error: {})",
            b.addr,
            ws.path,
            fleet.failed(),
            fleet.first_error().unwrap_or_default()
        );
    }
    let url = format!("http://{}", b.addr);
    let users = env.experiment.load.connections;
    if warmup > 0.0 {
        publish(
            env,
            WARMUP_FIRST_SLOT + first,
            open_config(env, &url, step.rate, warmup, users),
        )
        .context("warm-up")?;
    }
    // Frames of the warm-up still in flight land before the reset.
    std::thread::sleep(Duration::from_secs(1));
    fleet.reset()?;
    let cpu_before = (b.cpu)();
    let mut c = open_config(env, &url, step.rate, step.duration_secs, users);
    c.html_report = Some(env.out.join(format!("goose-{}.html", sanitize(b.label))));
    c.progress = true;
    let report = publish(env, first, c)?;
    let sessions = fleet.connected() as u64;
    let expected = report.requests.saturating_sub(report.errors) * sessions;
    let latency = fleet.await_frames(expected, PATIENCE)?;
    let cpu_after = (b.cpu)();
    let missing = expected.saturating_sub(latency.len());
    let note = format!(
        "{}: {} sessions open ({} failed{}), {} publishes ({} failed), {} of {expected} frames arrived",
        b.label,
        sessions,
        fleet.failed(),
        fleet
            .first_error()
            .map(|e| format!(", first: {e}"))
            .unwrap_or_default(),
        report.requests,
        report.errors,
        latency.len()
    );
    drop(fleet);
    let result = backend_result(
        b,
        &latency,
        report.measured_secs,
        report.errors + missing,
        report.late,
        match (cpu_before, cpu_after) {
            (Some(a), Some(z)) => Some((z - a).max(0.0)),
            _ => None,
        },
    );
    Ok((result, note))
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
