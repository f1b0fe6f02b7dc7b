//! `parallax replay FILE... --target URL`: a capture sent again,
//! open-model, through `parallax-capture`'s replay engine.
//!
//! Each `--target` gets the whole replay in turn (the first is the
//! baseline, the others candidates, as in `parallax run --direct`), and the
//! run is written in the common results schema (`docs/results-schema.md`)
//! so `parallax gate` can judge it. The exit code is 1 when the schedule
//! was not held (more than `--max-late-percent` of the requests sent late)
//! on any target, 0 otherwise.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use parallax_capture::replay::{self, Pace, Progress, ReplayOptions, ReplayReport, Target};
use parallax_capture::rewrite::{Filter, Rewrite};
use parallax_report::{
    BackendResult, LatencySummary, Mode, Role, RouteBackend, RouteResult, RunResults,
    ScenarioResult, Window,
};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Capture files (.plxcap segments, .gor, .har), read in order.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Where to send, `[NAME=]http://HOST:PORT`; repeat to replay to
    /// several targets in turn (the first is the baseline).
    #[arg(long = "target", required = true)]
    pub targets: Vec<String>,
    /// Recorded inter-arrival times divided by this (10 = ten times faster).
    #[arg(long, conflicts_with = "rate")]
    pub speed: Option<f64>,
    /// The recorded order at a fixed rate, requests per second.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Stop scheduling after this many seconds.
    #[arg(long)]
    pub duration_secs: Option<f64>,
    /// Loop over the capture until --duration-secs.
    #[arg(long = "loop", requires = "duration_secs")]
    pub looping: bool,
    /// Only paths matching one of these regexes.
    #[arg(long = "route")]
    pub routes: Vec<String>,
    /// Only these methods.
    #[arg(long = "method")]
    pub methods: Vec<String>,
    /// Set a header on every request, `"Name: value"`.
    #[arg(long = "set-header")]
    pub set_headers: Vec<String>,
    /// Remove a header from every request.
    #[arg(long = "remove-header")]
    pub remove_headers: Vec<String>,
    /// Rewrite targets (path and query): REGEX REPLACEMENT (`$1` groups).
    #[arg(long = "rewrite-path", num_args = 2, value_names = ["REGEX", "REPLACEMENT"])]
    pub rewrite_paths: Vec<String>,
    /// Ids to make fresh on every loop after the first (regex matched in
    /// the target, header values and body).
    #[arg(long)]
    pub fresh_id: Option<String>,
    /// What a fresh id becomes: `{match}`, `{loop}`, `{loop:N}` (zero-padded).
    /// Keep the match's width for binary bodies. Default `{match}~{loop}`.
    #[arg(long, requires = "fresh_id")]
    pub fresh_id_template: Option<String>,
    /// Ignore recorded connections: any request on any connection.
    #[arg(long)]
    pub no_sessions: bool,
    /// Skip recorded WebSocket sessions (by default each is replayed as a
    /// session: its handshake, the client's messages at their times, the
    /// server's frames paired with the recorded ones).
    #[arg(long)]
    pub no_websocket: bool,
    /// How long a replayed WebSocket session waits after its last message
    /// for recorded server frames still missing.
    #[arg(long, default_value_t = 2000)]
    pub ws_linger_ms: u64,
    /// The most connections per target.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Each request must be answered within this.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// A request sent later than this after its intended time is late.
    #[arg(long, default_value_t = 10.0)]
    pub late_after_ms: f64,
    /// Exit 1 when more than this share of requests was late.
    #[arg(long, default_value_t = 1.0)]
    pub max_late_percent: f64,
    /// The results file (schema parallax.results/v2).
    #[arg(long, default_value = "target/parallax-replay/results.json")]
    pub results: PathBuf,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

fn options(args: &ReplayArgs) -> anyhow::Result<ReplayOptions> {
    let pace = match (args.speed, args.rate) {
        (_, Some(r)) => Pace::Rate(r),
        (Some(f), None) => Pace::Speed(f),
        (None, None) => Pace::Speed(1.0),
    };
    let paths: Vec<(String, String)> = args
        .rewrite_paths
        .chunks(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect();
    Ok(ReplayOptions {
        pace,
        duration: args.duration_secs.map(Duration::from_secs_f64),
        loops: if args.looping { 0 } else { 1 },
        filter: Filter::new(&args.routes, &args.methods)?,
        rewrite: Rewrite::new(
            &args.set_headers,
            &args.remove_headers,
            &paths,
            args.fresh_id.as_deref(),
            args.fresh_id_template.as_deref(),
        )?,
        sessions: !args.no_sessions,
        websocket: !args.no_websocket,
        ws_linger: Duration::from_millis(args.ws_linger_ms),
        max_connections: args.max_connections,
        timeout: Duration::from_millis(args.timeout_ms),
        late_after: Duration::from_secs_f64(args.late_after_ms / 1000.0),
        ..ReplayOptions::default()
    })
}

/// `NAME=URL` or `URL` (named by its authority).
fn named(target: &str) -> (String, &str) {
    match target.split_once('=') {
        Some((name, url)) if !name.contains('/') => (name.to_owned(), url),
        _ => (
            target
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            target,
        ),
    }
}

/// This process's user + system CPU seconds and peak RSS, from `/proc`
/// (zero where they cannot be read: a report without them, not an error).
fn self_usage() -> (f64, u64) {
    crate::procstat::read(std::process::id())
        .map_or((0.0, 0), |u| (u.cpu_seconds, u.peak_rss_bytes))
}

fn progress_line(name: &str, p: &Progress) {
    eprint!(
        "\r{name}: {:>6.1} s (schedule {:>6.1} s)  sent {:>9}  done {:>9}  late {:>7}  errors {:>6}  conns {:>5} ",
        p.elapsed.as_secs_f64(),
        p.due.as_secs_f64(),
        p.sent,
        p.completed,
        p.late,
        p.errors,
        p.connections
    );
}

pub fn run(args: &ReplayArgs) -> anyhow::Result<i32> {
    let options = options(args)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut results = RunResults::new(command, Mode::Direct);
    let mut backends = Vec::new();
    let mut routes: Vec<RouteResult> = Vec::new();
    let mut notes = Vec::new();
    let mut held = true;
    let mut target_rate = 0.0;
    let mut duration = 0.0f64;
    for (i, spec) in args.targets.iter().enumerate() {
        let (name, url) = named(spec);
        let target = Target::parse(url)?;
        let (cpu_before, _) = self_usage();
        let quiet = args.quiet;
        let report = rt
            .block_on(replay::run(&args.files, &options, &target, |p| {
                if !quiet {
                    progress_line(&name, p);
                }
            }))
            .with_context(|| format!("replaying to {}", target.url))?;
        if !args.quiet {
            eprintln!();
        }
        let (cpu_after, rss) = self_usage();
        print_report(&name, &report, cpu_after - cpu_before, rss);
        let late_pct = report.late_fraction() * 100.0;
        if late_pct > args.max_late_percent {
            held = false;
            notes.push(format!(
                "{name}: {late_pct:.2}% of requests were sent late (more than {} ms after their time): the schedule was not held",
                args.late_after_ms
            ));
        }
        let ws = &report.websocket;
        if ws.sessions > 0 {
            notes.push(format!(
                "{name}: WebSocket sessions {} ({} failed), client messages {} ({} late), server frames recorded {} / received {}: same {}, different {}, missing {}, extra {}",
                ws.sessions, ws.failed, ws.sent, ws.late, ws.expected, ws.received, ws.same,
                ws.different, ws.missing, ws.extra
            ));
        }
        if report.truncated {
            notes.push(
                "a capture file was truncated; replayed up to its last complete record".into(),
            );
        }
        let scheduled = report.scheduled.as_secs_f64();
        if scheduled > 0.0 {
            target_rate = report.sent as f64 / scheduled;
        }
        duration = duration.max(report.elapsed.as_secs_f64());
        backends.push(backend(&name, i, &report));
        for (route, r) in &report.routes {
            let entry = match routes.iter_mut().find(|x| x.route == *route) {
                Some(e) => e,
                None => {
                    routes.push(RouteResult {
                        route: route.clone(),
                        backends: Vec::new(),
                    });
                    routes.last_mut().expect("just pushed")
                }
            };
            entry.backends.push(RouteBackend {
                name: name.clone(),
                requests: r.requests,
                mean_us: r.latency_us.mean(),
                p50_us: r.latency_us.value_at_quantile(0.5),
                p99_us: r.latency_us.value_at_quantile(0.99),
                estimated: false,
            });
        }
    }
    notes.dedup();
    results.scenarios.push(ScenarioResult {
        scenario: "replay".into(),
        unit: "requests".into(),
        target_rate_per_sec: target_rate,
        duration_secs: duration,
        warmup_secs: 0.0,
        backends,
        comparison: None,
        notes,
        routes,
        budgets: None,
        capacity: None,
        noise: None,
    });
    if let Some(dir) = args.results.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    results.save(&args.results)?;
    println!("results: {}", args.results.display());
    Ok(if held { 0 } else { 1 })
}

fn backend(name: &str, i: usize, r: &ReplayReport) -> BackendResult {
    BackendResult {
        name: name.to_owned(),
        language: String::new(),
        role: if i == 0 {
            Role::Baseline
        } else {
            Role::Candidate
        },
        achieved_rate_per_sec: r.achieved_rate(),
        requests: r.completed,
        errors: r.errors(),
        late: r.late,
        latency: LatencySummary::from_histogram(&r.latency_us),
        histogram: parallax_report::histogram::encode(&r.latency_us),
        timeline: r
            .windows
            .iter()
            .map(|w| Window {
                t_secs: w.t_secs,
                requests: w.requests,
                errors: w.errors,
                p50_us: w.p50_us,
                p99_us: w.p99_us,
                max_us: w.max_us,
            })
            .collect(),
        cpu_seconds: None,
        peak_rss_bytes: None,
        accounting: None,
        usage: Vec::new(),
        extra: Vec::new(),
    }
}

fn print_report(name: &str, r: &ReplayReport, cpu: f64, rss: u64) {
    let q = |p: f64| {
        if r.latency_us.is_empty() {
            0.0
        } else {
            r.latency_us.value_at_quantile(p) as f64 / 1000.0
        }
    };
    println!(
        "{name}: sent {} in {:.2} s ({:.0}/s; schedule {:.2} s), completed {}, late {} ({:.3}%), errors {}",
        r.sent,
        r.elapsed.as_secs_f64(),
        r.achieved_rate(),
        r.scheduled.as_secs_f64(),
        r.completed,
        r.late,
        r.late_fraction() * 100.0,
        r.errors()
    );
    println!(
        "  latency from intended time: p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
        q(0.5),
        q(0.99),
        q(0.999),
        r.latency_us.max() as f64 / 1000.0
    );
    let statuses: Vec<String> = r
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    println!(
        "  statuses {}; same as recorded {}, different {}; transport errors {:?}",
        statuses.join(", "),
        r.status_same,
        r.status_different,
        r.transport_errors
    );
    let ws = &r.websocket;
    if ws.sessions > 0 {
        println!(
            "  websocket: sessions {} ({} failed), client messages sent {} (late {}); server frames recorded {}, received {}: same {}, different {}, missing {}, extra {}",
            ws.sessions, ws.failed, ws.sent, ws.late, ws.expected, ws.received, ws.same,
            ws.different, ws.missing, ws.extra
        );
        for f in &ws.samples {
            println!(
                "    {} frame {}: recorded {:?}, received {:?}",
                f.path, f.index, f.expected, f.received
            );
        }
    }
    let s = &r.skipped;
    if s.filtered + s.websocket + s.truncated_body + s.gaps > 0 || r.sessions_overflowed > 0 {
        println!(
            "  skipped: filtered {}, websocket {}, truncated bodies {}; recorder gaps {}; sessions overflowed to the pool {}",
            s.filtered, s.websocket, s.truncated_body, s.gaps, r.sessions_overflowed
        );
    }
    println!(
        "  connections opened {}; replayer CPU {:.2} s ({:.3} of a core), peak RSS {:.1} MiB",
        r.connections_opened,
        cpu,
        if r.elapsed.as_secs_f64() > 0.0 {
            cpu / r.elapsed.as_secs_f64()
        } else {
            0.0
        },
        rss as f64 / (1 << 20) as f64
    );
}
