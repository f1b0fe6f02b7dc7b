//! `parallax bench proxy`: what the shadowing proxy costs the client,
//! against going straight to the primary and against nginx's `mirror`.
//!
//! Three paths to the same primary, measured side by side in one run:
//! - **direct**: the client talks to the primary;
//! - **parallax**: through `parallax proxy` (this binary, a child process),
//!   mirroring 100 % of requests to the shadow and comparing the answers;
//! - **nginx**: through Debian's nginx with an equivalent `mirror`
//!   configuration (keep-alive pools to both upstreams, HTTP/1.1 upstream,
//!   `mirror_request_body on`, `access_log off`; see [`nginx_conf`]).
//!
//! The primary is the Go session-cache twin and the shadow the Rust one,
//! both real services; the request is a GET of one preloaded 116-byte JSON
//! value (a hit on both, so the proxy's comparison matches). Phases:
//! 1. **max throughput**, closed loop: `wrk -t1 -c32` per path;
//! 2. **added latency**, open model: the project's loadgen at a constant
//!    rate, latency from each request's intended send time (coordinated
//!    omission corrected), at 50 % of the direct maximum and, when lower,
//!    at 50 % of the slowest path's maximum (so every path has headroom);
//! 3. **slow shadow**: the shadow replaced by a responder in this process
//!    that answers after 500 ms; Parallax and nginx at the lower rate of
//!    phase 2, against their own fast-shadow figures.
//!
//! Every phase runs the paths in A/B/C then C/B/A order (per `--rounds`),
//! so drift on a shared machine hits each path alike. All servers stay up
//! for the whole run (idle ones cost nothing); fresh Parallax and nginx
//! instances front the slow shadow.
//!
//! Threads: Parallax runs tokio's default runtime (one worker per CPU it
//! may use), so nginx gets `worker_processes` = that same CPU count. With
//! `--server-cpus` every server (twins, proxies) is pinned there and the
//! driver (this process, wrk, the slow shadow) to `--driver-cpus`.
//!
//! nginx and wrk are required and are not installed from here: the command
//! says how to install them and exits non-zero.
//!
//! Output: the one results model (`parallax.results/v2`, direct mode: one
//! path alone at a time) with `report.html` and `parallax run`'s table, in
//! `<out>/proxy/`: one scenario per open-model rate with direct as the
//! baseline (so the ratio rows are what the hop costs) and one per
//! slow-shadow rate with nginx as the baseline; added µs, the proxy's CPU
//! per request, wrk's maximum and the slow/fast p99 ratio are named extra
//! figures, the targets and the setup notes (see [`results_model`]).
//! Servers are the harness's one child-process type.
//!
//! Not a scenario on `parallax_harness::runner`: the runner compares two
//! backends through the proxy or each alone; this compares three paths to
//! one backend (direct, Parallax, nginx), adds a closed-loop wrk phase and
//! swaps the shadow for a slow one mid-run. It shares the runner's output,
//! through `parallax_harness::rounds`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::Serialize;

use parallax_harness::child::{ChildProcess, ChildSpec, Readiness};
use parallax_harness::prom;
use parallax_harness::rounds::{self, Round};
use parallax_loadgen::http::{Connection, TransportError};
use parallax_loadgen::pacing::{self, latency_histogram, Plan, Schedule};
use parallax_loadgen::result::{Latency, Load};
use parallax_proxy::config::{MirrorOrder, RouteConfig};
use parallax_proxy::config_builder::{self, ProxyService};
use parallax_report::{BackendResult, Better, ExtraMetric, Mode, Role, RunResults, ScenarioResult};

// nginx cannot report the port it picked, so listeners get free ports up front.
use crate::procstat;
use crate::stack::free_port;
use crate::twin::{self, Twin};

/// The one key every request reads.
const KEY_PATH: &str = "/v1/sessions/bench";
/// Its value: a small JSON session, so Parallax's comparison parses JSON.
const VALUE: &str = r#"{"user":"u-1","tenant":"acme","roles":["reader","writer"],"expires":1900000000,"prefs":{"theme":"dark","lang":"en"}}"#;
const VALUE_TYPE: &str = "application/json";

#[derive(Debug, Args)]
pub struct ProxyBenchArgs {
    /// Pairs of A/B/C + C/B/A orders per phase.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Seconds of each wrk run (max throughput).
    #[arg(long, default_value_t = 10)]
    pub wrk_secs: u64,
    /// wrk connections (closed loop: the most requests in flight).
    #[arg(long, default_value_t = 32)]
    pub wrk_connections: usize,
    /// Open-model load as a share of the measured direct maximum.
    #[arg(long, default_value_t = 0.5)]
    pub load_fraction: f64,
    /// A low fixed rate also measured, req/s: below what nginx sustains with
    /// a slow shadow (`--connections` / the shadow's delay).
    #[arg(long, default_value_t = 50.0)]
    pub low_rate: f64,
    /// Measured seconds of each open-model run.
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    /// Seconds at full rate before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup_secs: f64,
    /// Loadgen keep-alive connections (the most requests in flight).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// A slot taken this many ms after its time counts as late.
    #[arg(long, default_value_t = 1.0)]
    pub late_threshold_ms: f64,
    /// How long the slow shadow takes to answer.
    #[arg(long, default_value_t = 500)]
    pub slow_shadow_ms: u64,
    /// Parallax `shadow_max_in_flight` (its default) and `shadow_timeout_ms`
    /// (nginx's mirror `proxy_read_timeout` gets the same).
    #[arg(long, default_value_t = 256)]
    pub shadow_max_in_flight: usize,
    #[arg(long, default_value_t = 1000)]
    pub shadow_timeout_ms: u64,
    /// Pin the servers (twins, Parallax, nginx) to these CPUs, e.g. `0`.
    #[arg(long)]
    pub server_cpus: Option<String>,
    /// Pin the driver (this process, wrk, the slow shadow) to these CPUs.
    #[arg(long)]
    pub driver_cpus: Option<String>,
    /// Before each run, wait up to this long for the rest of the machine to
    /// go quiet (under 0.2 of a core busy); 0: don't wait.
    #[arg(long, default_value_t = 60)]
    pub quiet_wait_secs: u64,
    /// Where results.json and the logs go (in a `proxy` subfolder).
    #[arg(long, default_value = "target/parallax-bench")]
    pub out: PathBuf,
}

/// One of the three ways to the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Direct,
    Parallax,
    Nginx,
}

impl Variant {
    const ALL: [Variant; 3] = [Variant::Direct, Variant::Parallax, Variant::Nginx];

    fn name(self) -> &'static str {
        match self {
            Variant::Direct => "direct",
            Variant::Parallax => "parallax",
            Variant::Nginx => "nginx",
        }
    }
}

/// `rounds` pairs of `variants` forwards then backwards.
fn orders(variants: &[Variant], rounds: usize) -> Vec<Variant> {
    let mut out = Vec::new();
    for _ in 0..rounds {
        out.extend(variants.iter().copied());
        out.extend(variants.iter().rev().copied());
    }
    out
}

pub fn run(root: &Path, args: &ProxyBenchArgs) -> anyhow::Result<()> {
    check_tools()?;
    if args.rounds == 0 || !(args.load_fraction > 0.0 && args.load_fraction <= 1.0) {
        bail!("--rounds must be at least 1 and --load-fraction within (0, 1]");
    }
    let binaries = twin::build(root, "session-cache")?;
    let parallax_bin = build_parallax(root)?;
    let out = root.join(&args.out).join("proxy");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    if let Some(cpus) = &args.driver_cpus {
        pin_self(cpus)?;
    }
    let server_threads = cpu_count(args.server_cpus.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let load_at_start = procstat::load_average();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;

    // The upstreams, up for the whole run.
    let cpus = args.server_cpus.as_deref();
    let primary = Twin::spawn_on("go", &binaries.go, &[], &out.join("primary-go.log"), cpus)?;
    let shadow = Twin::spawn_on(
        "rust",
        &binaries.rust,
        &[],
        &out.join("shadow-rust.log"),
        cpus,
    )?;
    for twin in [&primary, &shadow] {
        twin.wait_ready(&http, Duration::from_secs(30))?;
        preload(&http, twin.addr)?;
    }
    let parallax = Server::parallax(
        &parallax_bin,
        &out,
        "parallax",
        &ProxySetup {
            primary: primary.addr,
            shadow: shadow.addr,
            max_in_flight: args.shadow_max_in_flight,
            timeout_ms: args.shadow_timeout_ms,
        },
        cpus,
    )?;
    let nginx_conf_fast = NginxSetup {
        dir: out.join("nginx"),
        listen: free_port()?,
        primary: primary.addr,
        shadow: shadow.addr,
        workers: server_threads,
        as_root: is_root(),
        shadow_timeout_ms: args.shadow_timeout_ms,
    };
    let nginx = Server::nginx(&nginx_conf_fast, cpus)?;
    for server in [&parallax, &nginx] {
        server.wait_serving(&http)?;
    }
    let fast = Stack {
        primary: &primary,
        shadow: &shadow,
        parallax: &parallax,
        nginx: &nginx,
        slow: None,
    };
    let quiet = Duration::from_secs(args.quiet_wait_secs);

    // Phase 1: max throughput.
    eprintln!(
        "phase 1: max throughput (wrk -t1 -c{})",
        args.wrk_connections
    );
    let mut throughput = Vec::new();
    for (i, variant) in orders(&Variant::ALL, args.rounds).into_iter().enumerate() {
        procstat::wait_for_quiet(quiet)?;
        let run = fast.wrk(variant, args, &http)?;
        eprintln!(
            "  {}. {:<8} {:>9.0} req/s  (others {:.2} cores)",
            i + 1,
            variant.name(),
            run.wrk.requests_per_sec,
            run.cpu.others_cores
        );
        throughput.push(run);
    }
    let max = |v: Variant| {
        mean(throughput.iter().filter(|r| r.variant == v), |r| {
            r.wrk.requests_per_sec
        })
    };
    let direct_max = max(Variant::Direct);
    let slowest_max = Variant::ALL
        .into_iter()
        .map(max)
        .fold(f64::INFINITY, f64::min);
    let rates = rates(direct_max, slowest_max, args.load_fraction, args.low_rate);

    // Phase 2: added latency, open model.
    let mut latency = Vec::new();
    for rate in &rates {
        let rate = rate.per_sec;
        eprintln!("phase 2: open model at {rate} req/s");
        for (i, variant) in orders(&Variant::ALL, args.rounds).into_iter().enumerate() {
            procstat::wait_for_quiet(quiet)?;
            let run = fast.paced(variant, rate, args, &runtime, &http)?;
            eprintln!(
                "  {}. {:<8} p50 {:>6} µs  p99 {:>7} µs  late {:.2}%  (others {:.2} cores)",
                i + 1,
                variant.name(),
                run.load.latency.p50_us,
                run.load.latency.p99_us,
                run.load.late_ratio * 100.0,
                run.cpu.others_cores
            );
            latency.push(run);
        }
    }
    let rss_fast = (parallax.peak_rss_bytes(), nginx.peak_rss_bytes());
    let clean_fast = [parallax.stop(), nginx.stop()];

    // Phase 3: a slow shadow, at the rates every path kept up with.
    let slow_rates: Vec<f64> = rates
        .iter()
        .map(|r| r.per_sec)
        .filter(|&r| r <= (slowest_max * args.load_fraction).round())
        .collect();
    let slow_shadow = SlowShadow::start(Duration::from_millis(args.slow_shadow_ms))?;
    let parallax_slow = Server::parallax(
        &parallax_bin,
        &out,
        "parallax-slow",
        &ProxySetup {
            primary: primary.addr,
            shadow: slow_shadow.addr,
            max_in_flight: args.shadow_max_in_flight,
            timeout_ms: args.shadow_timeout_ms,
        },
        cpus,
    )?;
    let nginx_slow = Server::nginx(
        &NginxSetup {
            dir: out.join("nginx-slow"),
            listen: free_port()?,
            shadow: slow_shadow.addr,
            ..nginx_conf_fast
        },
        cpus,
    )?;
    for server in [&parallax_slow, &nginx_slow] {
        server.wait_serving(&http)?;
    }
    let slow = Stack {
        primary: &primary,
        shadow: &shadow,
        parallax: &parallax_slow,
        nginx: &nginx_slow,
        slow: Some(&slow_shadow),
    };
    let mut slow_runs = Vec::new();
    for &slow_rate in &slow_rates {
        eprintln!(
            "phase 3: {} ms shadow, open model at {slow_rate} req/s",
            args.slow_shadow_ms
        );
        for (i, variant) in orders(&[Variant::Parallax, Variant::Nginx], args.rounds)
            .into_iter()
            .enumerate()
        {
            procstat::wait_for_quiet(quiet)?;
            let run = slow.paced(variant, slow_rate, args, &runtime, &http)?;
            eprintln!(
                "  {}. {:<8} p50 {:>6} µs  p99 {:>7} µs  late {:.2}%  (others {:.2} cores)",
                i + 1,
                variant.name(),
                run.load.latency.p50_us,
                run.load.latency.p99_us,
                run.load.late_ratio * 100.0,
                run.cpu.others_cores
            );
            slow_runs.push(run);
        }
    }
    let rss_slow = (parallax_slow.peak_rss_bytes(), nginx_slow.peak_rss_bytes());
    let clean_slow = [parallax_slow.stop(), nginx_slow.stop()];
    let clean_twins = [
        primary.stop(Duration::from_secs(30))?.success(),
        shadow.stop(Duration::from_secs(30))?.success(),
    ];

    let results = Results {
        bench: "proxy",
        request: format!("GET {KEY_PATH} ({} B {VALUE_TYPE})", VALUE.len()),
        primary: "go session-cache",
        shadow: "rust session-cache",
        args: ArgsRecord::from(args),
        machine: MachineRecord {
            cpus: cpu_count(None)?,
            cpu_model: procstat::cpu_model(),
            server_cpus: args.server_cpus.clone(),
            driver_cpus: args.driver_cpus.clone(),
            server_threads,
            nginx_version: tool_version("nginx", &["-v"]),
            wrk_version: tool_version("wrk", &["-v"]),
            load_average_start: load_at_start,
            load_average_end: procstat::load_average(),
        },
        direct_max_per_sec: direct_max,
        rates,
        slow_rates_per_sec: slow_rates,
        throughput,
        latency,
        slow_shadow: slow_runs,
        clean_exit: clean_fast
            .into_iter()
            .chain(clean_slow)
            .chain(clean_twins)
            .all(|c| c),
    };
    let summary = Summary::of(&results);
    let run = results_model(&results, &summary, [rss_fast, rss_slow]);
    crate::experiment::write(&run, &out)?;

    let failed: Vec<String> = results
        .throughput
        .iter()
        .filter(|r| r.wrk.non_2xx + r.wrk.socket_errors > 0)
        .map(|r| format!("wrk via {}: {:?}", r.variant.name(), r.wrk))
        .chain(
            results
                .latency
                .iter()
                .filter(|r| !r.errors.is_empty())
                .map(|r| format!("open model via {}: {:?}", r.variant.name(), r.errors)),
        )
        .collect();
    if !failed.is_empty() || !results.clean_exit {
        bail!(
            "a path answered with errors or a server did not stop cleanly (logs in {}):\n{}",
            out.display(),
            failed.join("\n")
        );
    }
    Ok(())
}

/// Refuses to start without nginx and wrk, saying how to get them.
fn check_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = ["nginx", "wrk"]
        .into_iter()
        .filter(|tool| {
            Command::new(tool)
                .arg("-v")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} not found; this bench compares against Debian's nginx and loads with wrk. \
             Install them with `apt-get install -y nginx-light wrk` (as root) and run it again",
            missing.join(" and ")
        );
    }
    Ok(())
}

/// The proxy under test: `PARALLAX_PROXY_BIN` when set (as
/// `scripts/proxy-floor.sh` takes it: a build to compare, or a debug build
/// for a quick check of the bench itself), else a release build of this
/// workspace.
fn build_parallax(root: &Path) -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("PARALLAX_PROXY_BIN") {
        return Ok(PathBuf::from(bin));
    }
    // This binary may be a debug build; the proxy under test is release.
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["build", "--release", "-q", "-p", "parallax"])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build --release -p parallax failed");
    }
    Ok(root.join("target/release/parallax"))
}

fn pin_self(cpus: &str) -> anyhow::Result<()> {
    let pid = std::process::id().to_string();
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid])
        .stdout(Stdio::null())
        .status()
        .context("cannot run taskset")?;
    if !status.success() {
        bail!("taskset -c {cpus} failed for the driver (--driver-cpus)");
    }
    Ok(())
}

/// CPUs in a taskset list (`0`, `0-1`, `0,2`), or on the machine.
fn cpu_count(list: Option<&str>) -> anyhow::Result<usize> {
    let Some(list) = list else {
        let info = std::fs::read_to_string("/proc/cpuinfo")?;
        return Ok(info.lines().filter(|l| l.starts_with("processor")).count());
    };
    let mut n = 0;
    for part in list.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi): (usize, usize) = (lo.trim().parse()?, hi.trim().parse()?);
        if hi < lo {
            bail!("bad CPU list {list:?}");
        }
        n += hi - lo + 1;
    }
    Ok(n)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|rest| rest.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn tool_version(tool: &str, args: &[&str]) -> String {
    Command::new(tool)
        .args(args)
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(if o.stderr.is_empty() {
                &o.stdout
            } else {
                &o.stderr
            });
            text.lines().next().unwrap_or_default().trim().to_owned()
        })
        .unwrap_or_default()
}

/// PUTs the bench key into one twin, with a day's TTL.
fn preload(http: &reqwest::blocking::Client, addr: SocketAddr) -> anyhow::Result<()> {
    let url = format!("http://{addr}{KEY_PATH}");
    let status = http
        .put(&url)
        .header("Content-Type", VALUE_TYPE)
        .header("X-Session-TTL", "86400")
        .body(VALUE)
        .send()?
        .status();
    if status != StatusCode::NO_CONTENT {
        bail!("preloading {url}: {status}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Configurations.

/// What a Parallax instance fronts.
struct ProxySetup {
    primary: SocketAddr,
    shadow: SocketAddr,
    max_in_flight: usize,
    timeout_ms: u64,
}

/// The Parallax config: one service, 100 % mirrored, one route template.
/// Ports 0: the proxy logs where it listens. No pids: the proxy finds the
/// upstreams from their ports when its `/metrics` is scraped, which this
/// bench does only between runs.
fn parallax_toml(s: &ProxySetup) -> anyhow::Result<String> {
    let mut service = ProxyService::new(
        "bench",
        "127.0.0.1:0",
        &s.primary.to_string(),
        &s.shadow.to_string(),
    );
    service.shadow_timeout_ms = s.timeout_ms;
    service.shadow_max_in_flight = s.max_in_flight;
    // Production's order, as nginx's `mirror` is measured in production's.
    service.mirror_order = MirrorOrder::Unordered;
    service.routes = vec![RouteConfig {
        template: "/v1/sessions/{id}".into(),
        compare: None,
    }];
    Ok(config_builder::render("127.0.0.1:0", &[service])?)
}

/// What an nginx instance fronts, and where it keeps its files.
#[derive(Clone)]
struct NginxSetup {
    dir: PathBuf,
    listen: SocketAddr,
    primary: SocketAddr,
    shadow: SocketAddr,
    workers: usize,
    as_root: bool,
    shadow_timeout_ms: u64,
}

/// Idle keep-alive connections nginx caches per worker and upstream.
const NGINX_KEEPALIVE: usize = 256;

/// nginx as a mirroring proxy, made as close to Parallax as its directives
/// allow: HTTP/1.1 keep-alive pools to both upstreams with no per-connection
/// request cap (hyper's pool has none), `Host` and `X-Forwarded-For` as
/// Parallax sends them, the whole request body mirrored, the mirror's read
/// timeout equal to Parallax's shadow timeout, no access log. Every path
/// (pid, logs, temp files) is inside `dir`, so it runs without touching
/// /etc or /var. `user root` only when started as root (workers would
/// otherwise drop to `nobody` and could not read `dir`).
fn nginx_conf(s: &NginxSetup) -> String {
    let dir = s.dir.display();
    let user = if s.as_root { "user root;\n" } else { "" };
    // Each client connection may hold a primary and a mirror connection.
    format!(
        r#"# Generated by `parallax bench proxy`; run as
# nginx -p {dir} -c {dir}/nginx.conf -g 'daemon off;'
{user}worker_processes {workers};
worker_rlimit_nofile 19000;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 6000;
}}

http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;

    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;

    upstream primary {{
        server {primary};
        keepalive {keepalive};
        keepalive_requests 1000000;
    }}
    upstream shadow {{
        server {shadow};
        keepalive {keepalive};
        keepalive_requests 1000000;
    }}

    server {{
        listen {listen};
        location / {{
            mirror /_parallax_mirror;
            mirror_request_body on;
            proxy_pass http://primary;
        }}
        location = /_parallax_mirror {{
            internal;
            proxy_connect_timeout {timeout}ms;
            proxy_send_timeout {timeout}ms;
            proxy_read_timeout {timeout}ms;
            proxy_pass http://shadow$request_uri;
        }}
    }}
}}
"#,
        workers = s.workers,
        primary = s.primary,
        shadow = s.shadow,
        listen = s.listen,
        keepalive = NGINX_KEEPALIVE,
        timeout = s.shadow_timeout_ms,
    )
}

// ---------------------------------------------------------------------------
// Child processes.

/// A proxy under test (Parallax or nginx): the harness's one child-process
/// type ([`ChildProcess`]: its own process group, its log, SIGTERM then
/// SIGKILL, killed with its group when dropped).
struct Server {
    name: String,
    child: ChildProcess,
    addr: SocketAddr,
    /// Parallax's admin listener.
    admin: Option<SocketAddr>,
}

impl Server {
    fn parallax(
        binary: &Path,
        out: &Path,
        name: &str,
        setup: &ProxySetup,
        cpus: Option<&str>,
    ) -> anyhow::Result<Self> {
        let config = out.join(format!("{name}.toml"));
        std::fs::write(&config, parallax_toml(setup)?)?;
        let mut spec = pinned(name, binary, &out.join(format!("{name}.log")), cpus);
        spec.args.extend([
            "proxy".to_owned(),
            "--config".to_owned(),
            config.display().to_string(),
        ]);
        // Ports 0: the service's `listening on` line comes first (its
        // address is the child's), the admin's right after it.
        spec.ready = Readiness::ListeningLine;
        let child = ChildProcess::spawn(&spec)?;
        let addr = child.addr.context("the proxy logged no address")?;
        let started = Instant::now();
        let admin = loop {
            match child.logged_addr("admin listening on") {
                Some(admin) => break admin,
                None if started.elapsed() < Duration::from_secs(10) => {
                    thread::sleep(Duration::from_millis(20))
                }
                None => bail!(
                    "{name} did not log its admin listener within 10 s; see {}",
                    child.log().display()
                ),
            }
        };
        Ok(Self {
            name: name.to_owned(),
            child,
            addr,
            admin: Some(admin),
        })
    }

    fn nginx(setup: &NginxSetup, cpus: Option<&str>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&setup.dir)?;
        let conf = setup.dir.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(setup))?;
        let name = format!("nginx ({})", setup.dir.display());
        let mut spec = pinned(
            &name,
            Path::new("nginx"),
            &setup.dir.join("stderr.log"),
            cpus,
        );
        spec.args.extend([
            "-p".to_owned(),
            setup.dir.display().to_string(),
            "-c".to_owned(),
            conf.display().to_string(),
            "-g".to_owned(),
            "daemon off;".to_owned(),
        ]);
        // nginx cannot report a port it picked: it was given a free one.
        spec.ready = Readiness::Tcp(setup.listen.to_string());
        Ok(Self {
            name,
            child: ChildProcess::spawn(&spec)?,
            addr: setup.listen,
            admin: None,
        })
    }

    /// Polls the bench key through the proxy until it answers 200.
    fn wait_serving(&self, http: &reqwest::blocking::Client) -> anyhow::Result<()> {
        let url = format!("http://{}{KEY_PATH}", self.addr);
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(&url).send() {
                if r.status() == StatusCode::OK {
                    return Ok(());
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("{} does not answer {url} with 200 after 30 s", self.name);
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// CPU-seconds of its process group (nginx: master and workers) so far.
    fn cpu_seconds(&self) -> f64 {
        self.child.usage().map_or(0.0, |u| u.cpu_seconds)
    }

    /// Peak RSS of its process group so far (VmHWM summed).
    fn peak_rss_bytes(&self) -> Option<u64> {
        self.child.usage().ok().map(|u| u.peak_rss_bytes)
    }

    /// SIGTERM (nginx: fast shutdown) to its group; whether it exited
    /// cleanly within 15 s (SIGKILL after that).
    fn stop(self) -> bool {
        let status = self.child.stop(Duration::from_secs(15));
        if status.is_none() {
            eprintln!("{} did not exit within 15 s of SIGTERM", self.name);
        }
        status.is_some_and(|s| s.success())
    }
}

/// A child spec for `binary`, under `taskset -c cpus` when pinned (taskset
/// execs it, so the child's pid is the binary's).
fn pinned(name: &str, binary: &Path, log: &Path, cpus: Option<&str>) -> ChildSpec {
    match cpus {
        Some(list) => {
            let mut spec = ChildSpec::new(name, "taskset", log);
            spec.args = vec!["-c".into(), list.into(), binary.display().to_string()];
            spec
        }
        None => ChildSpec::new(name, binary, log),
    }
}

/// `wrk` (a tool run to completion, its output read), pinned like the
/// driver when asked.
fn wrk_command(cpus: Option<&str>) -> Command {
    match cpus {
        Some(list) => {
            let mut taskset = Command::new("taskset");
            taskset.args(["-c", list, "wrk"]);
            taskset
        }
        None => Command::new("wrk"),
    }
}

// ---------------------------------------------------------------------------
// The slow shadow.

/// A shadow in this process that answers every request with the bench
/// value after a fixed delay, on a thread and runtime of its own; it lives
/// until the process ends. It counts the copies it receives.
struct SlowShadow {
    addr: SocketAddr,
    received: Arc<AtomicU64>,
}

impl SlowShadow {
    fn start(delay: Duration) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let received = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&received);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        thread::Builder::new()
            .name("slow-shadow".into())
            .spawn(move || runtime.block_on(serve_slowly(listener, delay, count)))?;
        Ok(Self { addr, received })
    }
}

async fn serve_slowly(listener: std::net::TcpListener, delay: Duration, count: Arc<AtomicU64>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let count = Arc::clone(&count);
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            count.fetch_add(1, Ordering::Relaxed);
            async move {
                // Read the whole copy before answering, as a service would.
                let _ = request.into_body().collect().await;
                tokio::time::sleep(delay).await;
                let response = Response::builder()
                    .header(http::header::CONTENT_TYPE, VALUE_TYPE)
                    .body(Full::new(Bytes::from_static(VALUE.as_bytes())))
                    .expect("a static response is valid");
                Ok::<_, Infallible>(response)
            }
        });
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

// ---------------------------------------------------------------------------
// Measuring.

/// Every process of one configuration.
struct Stack<'a> {
    primary: &'a Twin,
    shadow: &'a Twin,
    parallax: &'a Server,
    nginx: &'a Server,
    slow: Option<&'a SlowShadow>,
}

/// CPU use over one run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct CpuUse {
    /// The proxy (Parallax, or nginx's master and workers); 0 for direct.
    proxy_seconds: f64,
    primary_seconds: f64,
    shadow_seconds: f64,
    /// This process (loadgen, slow shadow) and wrk.
    driver_seconds: f64,
    /// Everything else on the machine, in cores over the run.
    others_cores: f64,
}

/// A reading of every process, to subtract from a later one.
struct Snapshot {
    at: Instant,
    machine: f64,
    me: f64,
    primary: f64,
    shadow: f64,
    proxy: f64,
    shadow_copies: f64,
    mirror: BTreeMap<String, f64>,
}

impl Stack<'_> {
    fn proxy(&self, variant: Variant) -> Option<&Server> {
        match variant {
            Variant::Direct => None,
            Variant::Parallax => Some(self.parallax),
            Variant::Nginx => Some(self.nginx),
        }
    }

    fn target(&self, variant: Variant) -> SocketAddr {
        self.proxy(variant).map_or(self.primary.addr, |p| p.addr)
    }

    fn snapshot(
        &self,
        variant: Variant,
        http: &reqwest::blocking::Client,
    ) -> anyhow::Result<Snapshot> {
        let proxy = self.proxy(variant);
        let shadow_copies = match self.slow {
            Some(slow) => slow.received.load(Ordering::Relaxed) as f64,
            None => {
                let text = http.get(self.shadow.url("/metrics")).send()?.text()?;
                counter_sum(
                    &text,
                    "http_requests_total",
                    &[("route", "/v1/sessions/{id}")],
                )
            }
        };
        let mirror = match proxy.and_then(|p| p.admin) {
            Some(admin) => {
                let text = http.get(format!("http://{admin}/metrics")).send()?.text()?;
                counters_by(&text, "parallax_mirror_total", "outcome")
            }
            None => BTreeMap::new(),
        };
        Ok(Snapshot {
            at: Instant::now(),
            machine: procstat::machine_busy_seconds()?,
            me: procstat::read(std::process::id())?.cpu_seconds,
            primary: self.primary.usage()?.cpu_seconds,
            shadow: self.shadow.usage()?.cpu_seconds,
            proxy: proxy.map_or(0.0, Server::cpu_seconds),
            shadow_copies,
            mirror,
        })
    }

    fn since(
        &self,
        before: Snapshot,
        variant: Variant,
        extra_driver: f64,
        http: &reqwest::blocking::Client,
    ) -> anyhow::Result<(CpuUse, f64, BTreeMap<String, u64>)> {
        let now = self.snapshot(variant, http)?;
        let proxy = now.proxy - before.proxy;
        let primary = now.primary - before.primary;
        // The slow shadow lives in this process: its CPU is the driver's.
        let shadow = if self.slow.is_some() {
            0.0
        } else {
            now.shadow - before.shadow
        };
        let driver = now.me - before.me + extra_driver;
        let machine = now.machine - before.machine;
        let secs = now.at.duration_since(before.at).as_secs_f64().max(1e-9);
        let cpu = CpuUse {
            proxy_seconds: proxy,
            primary_seconds: primary,
            shadow_seconds: shadow,
            driver_seconds: driver,
            others_cores: ((machine - proxy - primary - shadow - driver) / secs).max(0.0),
        };
        let mirror = now
            .mirror
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    (v - before.mirror.get(k).copied().unwrap_or(0.0)).round() as u64,
                )
            })
            .filter(|(_, v)| *v > 0)
            .collect();
        Ok((cpu, now.shadow_copies - before.shadow_copies, mirror))
    }

    /// One closed-loop wrk run against `variant`.
    fn wrk(
        &self,
        variant: Variant,
        args: &ProxyBenchArgs,
        http: &reqwest::blocking::Client,
    ) -> anyhow::Result<WrkRun> {
        let url = format!("http://{}{KEY_PATH}", self.target(variant));
        let before = self.snapshot(variant, http)?;
        let mut command = wrk_command(args.driver_cpus.as_deref());
        let child = command
            .args(["-t1", "--latency"])
            .arg(format!("-c{}", args.wrk_connections))
            .arg(format!("-d{}s", args.wrk_secs))
            .arg(&url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run wrk")?;
        // wrk's own CPU, read while it runs (it is gone once it exits).
        let pid = child.id();
        let (done_tx, done_rx) = mpsc::channel();
        let watcher = thread::spawn(move || {
            let mut last = 0.0;
            while done_rx.recv_timeout(Duration::from_millis(100)).is_err() {
                match procstat::read(pid) {
                    Ok(u) => last = u.cpu_seconds,
                    Err(_) => break,
                }
            }
            last
        });
        let output = child.wait_with_output()?;
        let _ = done_tx.send(());
        let wrk_cpu = watcher.join().unwrap_or(0.0);
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "wrk {url} failed: {}{}",
                text,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let wrk = parse_wrk(&text).with_context(|| format!("unexpected wrk output:\n{text}"))?;
        let (cpu, shadow_copies, mirror) = self.since(before, variant, wrk_cpu, http)?;
        Ok(WrkRun {
            variant,
            shadow_copies_per_request: shadow_copies / wrk.requests.max(1) as f64,
            wrk,
            cpu,
            mirror_outcomes: mirror,
        })
    }

    /// One open-model run against `variant` at `rate` requests/s.
    fn paced(
        &self,
        variant: Variant,
        rate: f64,
        args: &ProxyBenchArgs,
        runtime: &tokio::runtime::Runtime,
        http: &reqwest::blocking::Client,
    ) -> anyhow::Result<PacedRun> {
        let target = self.target(variant);
        let before = self.snapshot(variant, http)?;
        let ms = |v: f64| Duration::from_secs_f64(v / 1000.0);
        let duration = Duration::from_secs_f64(args.warmup_secs + args.duration_secs);
        let plan = Plan {
            schedule: Schedule {
                rate_per_sec: rate,
                ramp: Duration::ZERO,
                duration,
                max_requests: u64::MAX,
            },
            warmup: Duration::from_secs_f64(args.warmup_secs),
            late_after: ms(args.late_threshold_ms),
            early_by: pacing::EARLY_BY,
            overrun: duration / 4 + Duration::from_secs(5),
        };
        let senders = (0..args.connections)
            .map(|_| GetSender(Connection::new(target, Duration::from_secs(10))))
            .collect();
        let (report, senders) = runtime.block_on(pacing::run(plan, senders));
        // Close the connections and let their tasks see it before reading
        // the processes.
        drop(senders);
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
        let (cpu, shadow_copies, mirror) = self.since(before, variant, 0.0, http)?;
        let load = Load::from_report(rate, &report);
        let sent = (report.measured + report.warmup).max(1) as f64;
        let mut errors = BTreeMap::new();
        for (outcome, count) in report.outcomes.iter().chain(report.warmup_outcomes.iter()) {
            match outcome {
                Got::Ok => {}
                Got::Status(s) => *errors.entry(format!("status {s}")).or_default() += count,
                Got::Transport(e) => *errors.entry(format!("{e}")).or_default() += count,
            }
        }
        Ok(PacedRun {
            variant,
            proxy_cpu_us_per_request: cpu.proxy_seconds * 1e6 / sent,
            shadow_copies_per_request: shadow_copies / sent,
            load,
            errors,
            cpu,
            mirror_outcomes: mirror,
        })
    }
}

/// What one open-model request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Got {
    Ok,
    Status(u16),
    Transport(TransportError),
}

/// GETs the bench key on its own keep-alive connection.
struct GetSender(Connection);

impl pacing::Sender for GetSender {
    type Outcome = Got;

    async fn send(&mut self, _n: u64) -> Got {
        match self.0.send(Method::GET, KEY_PATH, Bytes::new()).await {
            Ok(answer) if answer.status == StatusCode::OK => Got::Ok,
            Ok(answer) => Got::Status(answer.status.as_u16()),
            Err(e) => Got::Transport(e),
        }
    }
}

// ---------------------------------------------------------------------------
// Parsing.

/// What `wrk --latency` printed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
struct WrkSummary {
    requests_per_sec: f64,
    requests: u64,
    p50_us: f64,
    p99_us: f64,
    non_2xx: u64,
    socket_errors: u64,
}

fn parse_wrk(text: &str) -> anyhow::Result<WrkSummary> {
    let mut out = WrkSummary::default();
    let mut seen_rate = false;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            out.requests_per_sec = rest.trim().parse()?;
            seen_rate = true;
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            out.non_2xx = rest.trim().parse()?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            out.socket_errors = rest
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if words.len() >= 2 && words[1] == "requests" && line.contains(" in ") {
            out.requests = words[0].parse()?;
        } else if words.len() == 2 && (words[0] == "50%" || words[0] == "99%") {
            let us = duration_us(words[1])?;
            if words[0] == "50%" {
                out.p50_us = us;
            } else {
                out.p99_us = us;
            }
        }
    }
    if !seen_rate {
        bail!("no Requests/sec line");
    }
    Ok(out)
}

/// wrk's `386.00us`, `5.61ms`, `1.02s`, in µs.
fn duration_us(text: &str) -> anyhow::Result<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e6)
    } else {
        bail!("not a wrk duration: {text}")
    };
    Ok(number.parse::<f64>()? * scale)
}

/// The sum of every sample of counter `name` whose labels include `filter`
/// (the harness's Prometheus text parser).
fn counter_sum(text: &str, name: &str, filter: &[(&str, &str)]) -> f64 {
    prom::sum(&prom::parse(text), name, filter).unwrap_or(0.0)
}

/// Counter `name` summed by the value of its label `by`.
fn counters_by(text: &str, name: &str, by: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for sample in prom::parse(text).into_iter().filter(|s| s.name == name) {
        if let Some(v) = sample.label(by) {
            *out.entry(v.to_owned()).or_default() += sample.value;
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Results.

#[derive(Debug, Serialize)]
struct WrkRun {
    variant: Variant,
    wrk: WrkSummary,
    cpu: CpuUse,
    shadow_copies_per_request: f64,
    /// Parallax's `parallax_mirror_total` by outcome over the run.
    mirror_outcomes: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
struct PacedRun {
    variant: Variant,
    load: Load,
    /// Non-200 answers and transport errors, warm-up included.
    errors: BTreeMap<String, u64>,
    cpu: CpuUse,
    proxy_cpu_us_per_request: f64,
    shadow_copies_per_request: f64,
    mirror_outcomes: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
struct ArgsRecord {
    rounds: usize,
    wrk_secs: u64,
    wrk_connections: usize,
    load_fraction: f64,
    low_rate: f64,
    duration_secs: f64,
    warmup_secs: f64,
    connections: usize,
    late_threshold_ms: f64,
    slow_shadow_ms: u64,
    shadow_max_in_flight: usize,
    shadow_timeout_ms: u64,
}

impl From<&ProxyBenchArgs> for ArgsRecord {
    fn from(a: &ProxyBenchArgs) -> Self {
        Self {
            rounds: a.rounds,
            wrk_secs: a.wrk_secs,
            wrk_connections: a.wrk_connections,
            load_fraction: a.load_fraction,
            low_rate: a.low_rate,
            duration_secs: a.duration_secs,
            warmup_secs: a.warmup_secs,
            connections: a.connections,
            late_threshold_ms: a.late_threshold_ms,
            slow_shadow_ms: a.slow_shadow_ms,
            shadow_max_in_flight: a.shadow_max_in_flight,
            shadow_timeout_ms: a.shadow_timeout_ms,
        }
    }
}

#[derive(Debug, Serialize)]
struct MachineRecord {
    cpus: usize,
    cpu_model: String,
    server_cpus: Option<String>,
    driver_cpus: Option<String>,
    /// Parallax's tokio workers = nginx's `worker_processes`.
    server_threads: usize,
    nginx_version: String,
    wrk_version: String,
    load_average_start: String,
    load_average_end: String,
}

#[derive(Debug, Serialize)]
struct Results {
    bench: &'static str,
    request: String,
    primary: &'static str,
    shadow: &'static str,
    args: ArgsRecord,
    machine: MachineRecord,
    direct_max_per_sec: f64,
    rates: Vec<Rate>,
    slow_rates_per_sec: Vec<f64>,
    throughput: Vec<WrkRun>,
    latency: Vec<PacedRun>,
    slow_shadow: Vec<PacedRun>,
    clean_exit: bool,
}

/// An open-model rate and why it was chosen.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Rate {
    per_sec: f64,
    why: String,
}

/// The open-model rates: `fraction` of the direct maximum (the issue's
/// definition), `fraction` of the slowest path's maximum when that is
/// clearly lower (so every path has headroom), and `low`.
fn rates(direct_max: f64, slowest_max: f64, fraction: f64, low: f64) -> Vec<Rate> {
    let pct = fraction * 100.0;
    let mut out = vec![Rate {
        per_sec: (direct_max * fraction).round(),
        why: format!("{pct:.0}% of the direct max"),
    }];
    let lower = (slowest_max * fraction).round();
    if lower < out[0].per_sec * 0.9 {
        out.push(Rate {
            per_sec: lower,
            why: format!("{pct:.0}% of the slowest path's max"),
        });
    }
    if low < out.last().expect("one rate").per_sec * 0.9 {
        out.push(Rate {
            per_sec: low,
            why: "a low fixed rate".into(),
        });
    }
    out
}

/// Added latency at one rate: a proxy's mean percentile − direct's.
#[derive(Debug, Serialize)]
struct Added {
    rate_per_sec: f64,
    parallax_p50_us: f64,
    parallax_p99_us: f64,
    nginx_p50_us: f64,
    nginx_p99_us: f64,
}

/// p99 with the slow shadow / p99 with the fast one, at one rate.
#[derive(Debug, Serialize)]
struct SlowRatio {
    rate_per_sec: f64,
    parallax: f64,
    nginx: f64,
}

/// The issue's targets, checked against the means.
#[derive(Debug, Serialize)]
struct Summary {
    /// Per open-model rate; the first is the issue's (50 % of direct max).
    added: Vec<Added>,
    throughput_parallax_over_nginx: f64,
    slow_shadow: Vec<SlowRatio>,
    /// Target: added p50 ≤ 100 µs at the first rate.
    added_p50_met: bool,
    /// Target: added p99 ≤ 1 ms at the first rate.
    added_p99_met: bool,
    /// Target: throughput ≥ nginx's.
    throughput_met: bool,
    /// Target: slow-shadow p99 within 5 % of the fast-shadow p99, at every
    /// slow-shadow rate.
    slow_shadow_met: bool,
}

fn mean<'a, T: 'a>(runs: impl Iterator<Item = &'a T>, f: impl Fn(&T) -> f64) -> f64 {
    let values: Vec<f64> = runs.map(f).collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

/// A latency percentile of a run, NaN when it measured nothing (an
/// overloaded path may never get past its warm-up slots).
fn percentile(p: &PacedRun, f: impl Fn(&Latency) -> u64) -> f64 {
    if p.load.requests == 0 {
        f64::NAN
    } else {
        f(&p.load.latency) as f64
    }
}

impl Summary {
    fn of(r: &Results) -> Self {
        let at = |runs: &[PacedRun], rate: f64, v: Variant, f: &dyn Fn(&Latency) -> u64| {
            mean(
                runs.iter()
                    .filter(|p| p.variant == v && p.load.target_rate_per_sec == rate),
                |p| percentile(p, f),
            )
        };
        let p50 = |l: &Latency| l.p50_us;
        let p99 = |l: &Latency| l.p99_us;
        let added: Vec<Added> = r
            .rates
            .iter()
            .map(|rate| {
                let rate = rate.per_sec;
                let added = |v: Variant, f: &dyn Fn(&Latency) -> u64| {
                    at(&r.latency, rate, v, f) - at(&r.latency, rate, Variant::Direct, f)
                };
                Added {
                    rate_per_sec: rate,
                    parallax_p50_us: added(Variant::Parallax, &p50),
                    parallax_p99_us: added(Variant::Parallax, &p99),
                    nginx_p50_us: added(Variant::Nginx, &p50),
                    nginx_p99_us: added(Variant::Nginx, &p99),
                }
            })
            .collect();
        let max = |v: Variant| {
            mean(r.throughput.iter().filter(|w| w.variant == v), |w| {
                w.wrk.requests_per_sec
            })
        };
        let slow_shadow: Vec<SlowRatio> = r
            .slow_rates_per_sec
            .iter()
            .map(|&rate| {
                let ratio =
                    |v: Variant| at(&r.slow_shadow, rate, v, &p99) / at(&r.latency, rate, v, &p99);
                SlowRatio {
                    rate_per_sec: rate,
                    parallax: ratio(Variant::Parallax),
                    nginx: ratio(Variant::Nginx),
                }
            })
            .collect();
        let throughput = max(Variant::Parallax) / max(Variant::Nginx);
        Self {
            added_p50_met: added[0].parallax_p50_us <= 100.0,
            added_p99_met: added[0].parallax_p99_us <= 1000.0,
            throughput_met: throughput >= 1.0,
            slow_shadow_met: slow_shadow.iter().all(|s| s.parallax <= 1.05),
            added,
            throughput_parallax_over_nginx: throughput,
            slow_shadow,
        }
    }
}

// ---------------------------------------------------------------------------
// The results model.

/// The run as `parallax.results/v2` (direct mode: each path alone in
/// turn): one scenario per open-model rate (`bench-proxy-<rate>`) with
/// direct as the baseline and Parallax and nginx as candidates, so the
/// ratio rows are what a hop costs; one per slow-shadow rate
/// (`bench-proxy-slow-shadow-<rate>`) with nginx as the baseline. A
/// path's CPU is the whole path's (proxy, primary and shadow), its peak
/// RSS the proxy's (none for direct). The bench's own figures — added
/// µs over direct, the proxy's CPU per request, wrk's closed-loop
/// maximum, shadow copies per request, the slow/fast p99 ratio — are
/// named extra figures; the targets and the setup are notes.
fn results_model(r: &Results, s: &Summary, rss: [(Option<u64>, Option<u64>); 2]) -> RunResults {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut run = RunResults::new(command, Mode::Direct);
    let m = &r.machine;
    let pin = |c: &Option<String>| {
        c.as_deref()
            .map_or("unpinned".to_owned(), |c| format!("CPUs {c}"))
    };
    let setup = [
        format!(
            "{}; primary {}, shadow {}; 100% mirrored; paths in A/B/C then C/B/A order ({} round(s))",
            r.request, r.primary, r.shadow, r.args.rounds
        ),
        format!(
            "servers {} (Parallax {} tokio worker(s), nginx worker_processes {}, {}); driver + wrk {} ({}); load average {} -> {}",
            pin(&m.server_cpus),
            m.server_threads,
            m.server_threads,
            m.nginx_version,
            pin(&m.driver_cpus),
            m.wrk_version,
            m.load_average_start,
            m.load_average_end
        ),
        format!(
            "targets: added p50 <= 100 us at the first rate {}; added p99 <= 1 ms {}; throughput >= nginx's {} ({:.2}x); slow-shadow p99 within 5% {}",
            met(s.added_p50_met),
            met(s.added_p99_met),
            met(s.throughput_met),
            s.throughput_parallax_over_nginx,
            met(s.slow_shadow_met)
        ),
    ];
    let wrk_max = |v: Variant| {
        mean(r.throughput.iter().filter(|w| w.variant == v), |w| {
            w.wrk.requests_per_sec
        })
    };
    let peak = |v: Variant, slow: bool| {
        let (parallax, nginx) = rss[usize::from(slow)];
        match v {
            Variant::Direct => None,
            Variant::Parallax => parallax,
            Variant::Nginx => nginx,
        }
    };
    for (i, rate) in r.rates.iter().enumerate() {
        let added = &s.added[i];
        let rounds = paced_rounds(&r.latency, rate.per_sec, Variant::Direct, &|v| {
            peak(v, false)
        });
        let mut backends = rounds::fold(&rounds, ACCOUNTING);
        for b in &mut backends {
            let v = variant_named(&b.name);
            b.extra.push(ExtraMetric::new(
                "max_throughput_per_sec",
                wrk_max(v),
                "per_sec",
                Some(Better::Higher),
                format!(
                    "closed loop, wrk -t1 -c{} for {} s: mean over the runs",
                    r.args.wrk_connections, r.args.wrk_secs
                ),
            ));
            let (p50, p99) = match v {
                Variant::Direct => continue,
                Variant::Parallax => (added.parallax_p50_us, added.parallax_p99_us),
                Variant::Nginx => (added.nginx_p50_us, added.nginx_p99_us),
            };
            for (name, value, what) in [("added_p50_us", p50, "p50"), ("added_p99_us", p99, "p99")]
            {
                b.extra.push(ExtraMetric::new(
                    name,
                    value,
                    "us",
                    Some(Better::Lower),
                    format!(
                        "the path's mean {what} minus direct's at this rate: what the hop adds"
                    ),
                ));
            }
        }
        let mut notes = vec![format!("rate: {}", rate.why)];
        notes.extend(setup.iter().cloned());
        run.scenarios.push(scenario(
            format!("bench-proxy-{}", rate.per_sec),
            rate.per_sec,
            r.args.duration_secs,
            r.args.warmup_secs,
            backends,
            notes,
        ));
    }
    for (i, &rate) in r.slow_rates_per_sec.iter().enumerate() {
        let rounds = paced_rounds(&r.slow_shadow, rate, Variant::Nginx, &|v| peak(v, true));
        let mut backends = rounds::fold(&rounds, ACCOUNTING);
        for b in &mut backends {
            let ratio = match variant_named(&b.name) {
                Variant::Parallax => s.slow_shadow[i].parallax,
                Variant::Nginx => s.slow_shadow[i].nginx,
                Variant::Direct => continue,
            };
            b.extra.push(ExtraMetric::new(
                "p99_slow_over_fast_shadow",
                ratio,
                "ratio",
                Some(Better::Lower),
                format!(
                    "p99 with a {} ms shadow / p99 with the fast shadow at this rate (target for Parallax: <= 1.05)",
                    r.args.slow_shadow_ms
                ),
            ));
        }
        let mut notes = vec![format!(
            "the shadow answers after {} ms; the primary is unchanged",
            r.args.slow_shadow_ms
        )];
        notes.extend(setup.iter().cloned());
        run.scenarios.push(scenario(
            format!("bench-proxy-slow-shadow-{rate}"),
            rate,
            r.args.duration_secs,
            r.args.warmup_secs,
            backends,
            notes,
        ));
    }
    run
}

const ACCOUNTING: &str = "/proc: CPU of the proxy's, the primary's and the shadow's process groups over each run; peak RSS the proxy's (VmHWM of its group)";

fn met(yes: bool) -> &'static str {
    if yes {
        "met"
    } else {
        "NOT met"
    }
}

fn variant_named(name: &str) -> Variant {
    Variant::ALL
        .into_iter()
        .find(|v| v.name() == name)
        .unwrap_or(Variant::Direct)
}

/// The open-model runs at `rate` as rounds; `baseline` is the path the
/// others are judged against.
fn paced_rounds(
    runs: &[PacedRun],
    rate: f64,
    baseline: Variant,
    peak: &dyn Fn(Variant) -> Option<u64>,
) -> Vec<Round> {
    let mut rounds: Vec<Round> = runs
        .iter()
        .filter(|p| p.load.target_rate_per_sec == rate)
        .map(|p| {
            let sent = (p.load.requests + p.load.warmup_requests).max(1) as f64;
            Round {
                backend: p.variant.name().to_owned(),
                language: match p.variant {
                    Variant::Direct => "go",
                    Variant::Parallax => "rust",
                    Variant::Nginx => "c",
                }
                .to_owned(),
                role: if p.variant == baseline {
                    Role::Baseline
                } else {
                    Role::Candidate
                },
                latency: p.load.histogram.clone().unwrap_or_else(latency_histogram),
                measured_secs: p.load.measured_secs,
                errors: p.errors.values().sum(),
                late: p.load.late_slots,
                cpu_seconds: Some(
                    p.cpu.proxy_seconds + p.cpu.primary_seconds + p.cpu.shadow_seconds,
                ),
                peak_rss_bytes: peak(p.variant),
                extra: vec![
                    ExtraMetric::new(
                        "proxy_cpu_us_per_request",
                        p.proxy_cpu_us_per_request,
                        "us",
                        Some(Better::Lower),
                        "the proxy's CPU time per request sent (warm-up included); 0 for direct",
                    ),
                    ExtraMetric::new(
                        "path_cpu_us_per_request",
                        (p.cpu.proxy_seconds + p.cpu.primary_seconds + p.cpu.shadow_seconds) * 1e6
                            / sent,
                        "us",
                        Some(Better::Lower),
                        "proxy + primary + shadow CPU time per request sent",
                    ),
                    ExtraMetric::new(
                        "shadow_copies_per_request",
                        p.shadow_copies_per_request,
                        "ratio",
                        None,
                        "requests the shadow received per request sent (1.0: every one mirrored)",
                    ),
                    ExtraMetric::new(
                        "others_cores",
                        p.cpu.others_cores,
                        "ratio",
                        None,
                        "cores busy in other processes during the run: noise",
                    ),
                ],
            }
        })
        .collect();
    // The baseline first, so the table reads baseline then candidates.
    rounds.sort_by_key(|r| r.role != Role::Baseline);
    rounds
}

fn scenario(
    name: String,
    rate: f64,
    duration_secs: f64,
    warmup_secs: f64,
    backends: Vec<BackendResult>,
    notes: Vec<String>,
) -> ScenarioResult {
    ScenarioResult {
        scenario: name,
        unit: "requests".into(),
        target_rate_per_sec: rate,
        duration_secs,
        warmup_secs,
        backends,
        comparison: None,
        notes,
        routes: Vec::new(),
        budgets: None,
        capacity: None,
        noise: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nginx_setup(as_root: bool) -> NginxSetup {
        NginxSetup {
            dir: PathBuf::from("/tmp/px-bench/nginx"),
            listen: "127.0.0.1:18094".parse().unwrap(),
            primary: "127.0.0.1:18091".parse().unwrap(),
            shadow: "127.0.0.1:18092".parse().unwrap(),
            workers: 2,
            as_root,
            shadow_timeout_ms: 1000,
        }
    }

    #[test]
    fn nginx_mirrors_everything_over_keepalive_pools_to_both_upstreams() {
        let conf = nginx_conf(&nginx_setup(true));
        for directive in [
            "worker_processes 2;",
            "user root;",
            "access_log off;",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
            "mirror /_parallax_mirror;",
            "mirror_request_body on;",
            "server 127.0.0.1:18091;",
            "server 127.0.0.1:18092;",
            "proxy_pass http://primary;",
            "proxy_pass http://shadow$request_uri;",
            "proxy_read_timeout 1000ms;",
            "listen 127.0.0.1:18094;",
        ] {
            assert!(conf.contains(directive), "missing {directive:?} in\n{conf}");
        }
        assert_eq!(
            conf.matches("keepalive 256;").count(),
            2,
            "a pool per upstream"
        );
    }

    #[test]
    fn nginx_keeps_every_file_inside_its_folder() {
        let conf = nginx_conf(&nginx_setup(false));
        for line in conf
            .lines()
            .filter(|l| l.contains("_path ") || l.starts_with("pid") || l.starts_with("error_log"))
        {
            assert!(line.contains("/tmp/px-bench/nginx/"), "{line}");
        }
        assert!(!conf.contains("user root"), "only as root");
        let opens = conf.matches('{').count();
        assert_eq!(opens, conf.matches('}').count(), "balanced braces");
    }

    #[test]
    fn the_parallax_config_is_valid_and_mirrors_everything() {
        let text = parallax_toml(&ProxySetup {
            primary: "127.0.0.1:1".parse().unwrap(),
            shadow: "127.0.0.1:2".parse().unwrap(),
            max_in_flight: 256,
            timeout_ms: 1000,
        })
        .unwrap();
        let config = parallax_proxy::Config::parse(&text, "bench").unwrap();
        config.validate().unwrap();
        assert_eq!(config.services.len(), 1);
        assert!(text.contains("mirror_percent = 100.0"));
        assert!(text.contains("shadow_max_in_flight = 256"), "{text}");
        assert!(text.contains("mirror_order = \"unordered\""), "{text}");
    }

    #[test]
    fn rates_add_the_slowest_paths_half_and_the_low_rate_only_when_lower() {
        let r = rates(40_000.0, 9_000.0, 0.5, 50.0);
        let per_sec: Vec<f64> = r.iter().map(|r| r.per_sec).collect();
        assert_eq!(per_sec, [20_000.0, 4_500.0, 50.0]);
        let r = rates(10_000.0, 9_800.0, 0.5, 5_000.0);
        assert_eq!(r.len(), 1, "{r:?}");
    }

    #[test]
    fn paths_run_forwards_then_backwards_each_round() {
        use Variant::*;
        assert_eq!(
            orders(&Variant::ALL, 1),
            vec![Direct, Parallax, Nginx, Nginx, Parallax, Direct]
        );
        assert_eq!(orders(&[Parallax, Nginx], 2).len(), 8);
    }

    #[test]
    fn reads_throughput_latency_and_errors_from_wrk() {
        let text = "Running 5s test @ http://127.0.0.1:1/v1/sessions/bench
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   612.11us    1.20ms  40.10ms   97.00%
    Req/Sec    66.94k     3.10k   70.10k    80.00%
  Latency Distribution
     50%  386.00us
     75%  450.00us
     90%  600.00us
     99%    5.61ms
  333583 requests in 5.00s, 60.42MB read
  Non-2xx or 3xx responses: 5
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:  66716.21
Transfer/sec:     12.08MB
";
        let w = parse_wrk(text).unwrap();
        assert_eq!(w.requests, 333_583);
        assert_eq!(w.requests_per_sec, 66_716.21);
        assert_eq!(w.p50_us, 386.0);
        assert_eq!(w.p99_us, 5610.0);
        assert_eq!(w.non_2xx, 5);
        assert_eq!(w.socket_errors, 3);
        assert!(parse_wrk("garbage").is_err());
    }

    #[test]
    fn sums_prometheus_counters_by_label() {
        let text = r#"# TYPE http_requests_total counter
http_requests_total{route="/v1/sessions/{id}",status="200"} 7
http_requests_total{route="/v1/sessions/{id}",status="204"} 2
http_requests_total{route="/healthz",status="200"} 100
parallax_mirror_total{service="bench",route="a",outcome="compared"} 3
parallax_mirror_total{service="bench",route="b",outcome="compared"} 4
parallax_mirror_total{service="bench",route="b",outcome="dropped_queue_full"} 1
"#;
        assert_eq!(
            counter_sum(
                text,
                "http_requests_total",
                &[("route", "/v1/sessions/{id}")]
            ),
            9.0
        );
        let by = counters_by(text, "parallax_mirror_total", "outcome");
        assert_eq!(by["compared"], 7.0);
        assert_eq!(by["dropped_queue_full"], 1.0);
    }

    #[test]
    fn counts_cpus_in_a_taskset_list() {
        assert_eq!(cpu_count(Some("0")).unwrap(), 1);
        assert_eq!(cpu_count(Some("0-1")).unwrap(), 2);
        assert_eq!(cpu_count(Some("0,2-3")).unwrap(), 3);
        assert!(cpu_count(Some("x")).is_err());
    }
}
