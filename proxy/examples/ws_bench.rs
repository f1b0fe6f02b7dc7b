//! WebSocket shadowing at scale: memory per proxied connection and the
//! primary-vs-shadow delivery skew, with the fan-out twins (Go primary,
//! Rust shadow) behind the proxy.
//!
//! ```sh
//! cargo build --release -p parallax-fanout -p parallax-proxy --example ws_bench
//! cargo run --release -p parallax-proxy --example ws_bench -- run \
//!     --checkpoints 2000,5000 --notifications 30 --rate 2
//! ```
//!
//! Every process the figures come from is its own: the twins
//! (`$PARALLAX_FANOUT_GO_BIN`, default `target/parallax-bin/fanout`;
//! `$PARALLAX_FANOUT_RUST_BIN`, default `target/release/parallax-fanout`),
//! the proxy (this binary, `proxy <config>`), and the clients (this binary,
//! `clients …`, at most `--per-worker` connections each, from source
//! addresses 127.0.0.2…, so no process nears 20,000 descriptors; the proxy
//! holds three per connection).
//!
//! 1. Idle memory: the proxy's `VmRSS` once started, then at each
//!    checkpoint after the connections settled; (RSS − baseline) / N.
//!    Every connection is shadowed (`--mirror-percent 100`, the default; 0
//!    shows the cost of relaying alone: client and primary sockets).
//! 2. Skew: `--notifications` notifications at `--rate`/s, each POSTed to
//!    both twins at once (same id and `published_at_unix_us`), broadcast to
//!    every connection; the proxy's `parallax_ws_delivery_skew_seconds`
//!    (|shadow − primary| per paired frame) read as percentiles by linear
//!    interpolation inside its 1-2-5 buckets, and the clients' delivery
//!    latency through the proxy (exact, HDR) next to `--direct` clients on
//!    the primary without the proxy.
//!
//! 3. CPU per relayed frame: the proxy's user + system CPU over the
//!    broadcasts divided by the frames the clients got. `--via nginx` puts
//!    nginx (`proxy_pass` with the upgrade headers; it cannot shadow) in the
//!    proxy's place, so the figure reads as a ratio to nginx;
//!    `$PARALLAX_PROXY_BIN` runs another proxy binary (`bench_proxy
//!    --config FILE`, or a `parallax*` binary as `proxy --config FILE`) for
//!    before/after; `--workers N` gives either N workers (tokio, nginx
//!    `worker_processes`).
//! 4. `--callgrind`: the proxy (or nginx) under valgrind's callgrind,
//!    counters zeroed once the connections settled and dumped once every
//!    frame arrived: user-space instructions and `malloc`/`calloc`/`realloc`
//!    calls per relayed frame, exact and blind to the machine's load (use a
//!    few hundred connections: callgrind is ~50× slower).
//!
//! `scripts/ws-relay-cost.sh` runs these side by side (A B B A).
//!
//! The twins and the proxy are `parallax_process`'s one child-process type
//! (their logs in `$TMPDIR/ws_bench_<pid>/`), their CPU and RSS its one
//! `/proc` reader, the proxy's counters its one Prometheus parser.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use parallax_process::child::{self, ChildProcess, ChildSpec, Readiness};
use parallax_process::prom::{self, PromHistogram};
use parallax_proxy::config_builder::{self, ProxyService};
use parallax_proxy::ws::frame::{Event, Reader};

const TOPIC: &str = "bench";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("proxy") => proxy(&args[1]),
        Some("clients") => clients(&args[1..]),
        _ => Err("usage: ws_bench run [--checkpoints 2000,5000] [--notifications 30] [--rate 2] [--per-worker 2500] [--direct 500] [--settle-secs 5] [--mirror-percent 100] [--via parallax|nginx] [--workers N] [--callgrind]".into()),
    };
    if let Err(e) = result {
        eprintln!("ws_bench: {e}");
        std::process::exit(1);
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn flag<'a>(args: &'a [String], name: &str, default: &'a str) -> &'a str {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, String::as_str)
}

// ---------------------------------------------------------------- run

fn run(args: &[String]) -> Result<()> {
    let checkpoints: Vec<usize> = flag(args, "--checkpoints", "2000,5000")
        .split(',')
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()?;
    let notifications: u64 = flag(args, "--notifications", "30").parse()?;
    let rate: f64 = flag(args, "--rate", "2").parse()?;
    let per_worker: usize = flag(args, "--per-worker", "2500").parse()?;
    let direct: usize = flag(args, "--direct", "500").parse()?;
    let settle = Duration::from_secs(flag(args, "--settle-secs", "5").parse()?);
    let mirror_percent: f64 = flag(args, "--mirror-percent", "100").parse()?;
    let root = std::env::current_dir()?;
    let bin = |var: &str, default: &str| {
        std::env::var(var).unwrap_or_else(|_| root.join(default).display().to_string())
    };
    let go_bin = bin("PARALLAX_FANOUT_GO_BIN", "target/parallax-bin/fanout");
    let rust_bin = bin("PARALLAX_FANOUT_RUST_BIN", "target/release/parallax-fanout");
    let logs = std::env::temp_dir().join(format!("ws_bench_{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    let twin = |name: &str, binary: &str| -> Result<(ChildProcess, SocketAddr)> {
        let mut spec = ChildSpec::new(name, binary, logs.join(format!("{name}.log")));
        spec.args = ["--listen", "127.0.0.1:0", "--ping-interval-secs", "3600"]
            .map(String::from)
            .to_vec();
        spec.ready = Readiness::ListeningLine;
        let twin = ChildProcess::spawn(&spec)?;
        let addr = twin.addr.expect("ready by its listening line");
        Ok((twin, addr))
    };
    let (_go, go_addr) = twin("go", &go_bin)?;
    let (_rust, rust_addr) = twin("rust", &rust_bin)?;

    let via = flag(args, "--via", "parallax");
    let workers_flag: usize = flag(args, "--workers", "0").parse()?;
    let callgrind = args.iter().any(|a| a == "--callgrind");
    let listen = free_addr()?;
    let front = match via {
        "parallax" => Front::parallax(
            &logs,
            listen,
            go_addr,
            rust_addr,
            mirror_percent,
            workers_flag,
            callgrind,
        )?,
        "nginx" => Front::nginx(&logs, listen, go_addr, workers_flag, callgrind)?,
        other => return Err(format!("--via {other}: parallax or nginx").into()),
    };
    let admin = front.admin;
    let proxy = &front.process;
    std::thread::sleep(Duration::from_secs(1));
    let baseline = proxy.usage()?.rss_bytes;
    println!("proxy baseline RSS {:.1} MiB", baseline as f64 / 1048576.0);

    let mut workers = Vec::new();
    let mut total = 0;
    for &checkpoint in &checkpoints {
        while total < checkpoint {
            let n = per_worker.min(checkpoint - total);
            workers.push(Worker::spawn(listen, n, total)?);
            total += n;
        }
        std::thread::sleep(settle);
        let connected: usize = workers.iter().map(|w| w.connected).sum();
        let metrics = scrape(admin)?;
        let shadows = sum(
            &metrics,
            "parallax_ws_connections",
            &[("backend", "shadow")],
        );
        let rss = proxy.usage()?.rss_bytes;
        println!(
            "{connected} connections ({shadows} shadowed): proxy RSS {:.1} MiB, {:.2} KiB per proxied connection",
            rss as f64 / 1048576.0,
            (rss - baseline) as f64 / 1024.0 / connected.max(1) as f64
        );
    }
    let mut direct_workers = Vec::new();
    if direct > 0 {
        direct_workers.push(Worker::spawn(go_addr, direct, total)?);
    }
    std::thread::sleep(Duration::from_secs(2));
    for w in workers.iter_mut().chain(direct_workers.iter_mut()) {
        w.command("reset")?;
    }
    let before = scrape(admin)?;
    if callgrind {
        callgrind_control("-z", proxy.pid())?;
    }
    let cpu_before = proxy.usage()?.cpu_seconds;
    let started = Instant::now();
    let base_us = now_us();
    for i in 0..notifications {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let body = format!(
            r#"{{"id":"bench-{base_us}-{i}","topic":"{TOPIC}","published_at_unix_us":{},"body":{{"seq":{i}}}}}"#,
            now_us()
        );
        // Both twins at once, as a broadcast to both would be.
        std::thread::scope(|s| {
            let a = s.spawn(|| http(go_addr, "POST", "/v1/notify", &body));
            let b = s.spawn(|| http(rust_addr, "POST", "/v1/notify", &body));
            let (a, b) = (a.join().expect("no panic"), b.join().expect("no panic"));
            if a.is_err() || b.is_err() {
                eprintln!("notify failed: {a:?} {b:?}");
            }
        });
    }
    println!(
        "published {notifications} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(5));
    // A slow proxy (callgrind's) may still be relaying, or pairing: wait
    // until every frame arrived and, when compared, was decided.
    let expected = (workers.iter().map(|w| w.connected).sum::<usize>() as u64) * notifications;
    let patience = Instant::now() + Duration::from_secs(180);
    let comparing = admin.is_some() && mirror_percent > 0.0;
    let mut counts = Counts::default();
    let mut through = merged(&mut workers)?;
    loop {
        let delivered = through.len() >= expected;
        if delivered || Instant::now() >= patience {
            // Under callgrind, what the proxy did up to now is dumped
            // before the scrape and counted; the scrape's own work is
            // zeroed away (it is no frame's).
            if callgrind {
                counts.add_dump(&front)?;
            }
            let decided = decided(&scrape(admin)?) - decided(&before);
            if callgrind {
                callgrind_control("-z", proxy.pid())?;
            }
            if Instant::now() >= patience || (!comparing || decided >= expected as f64) {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(1));
        through = merged(&mut workers)?;
    }
    let cpu = proxy.usage()?.cpu_seconds - cpu_before;
    let counts = callgrind.then_some(counts);
    let after = scrape(admin)?;
    let plain = merged(&mut direct_workers)?;
    let results: Vec<String> = RESULTS
        .iter()
        .map(|r| {
            let label = [("result", *r)];
            format!(
                "{r} {}",
                sum(&after, "parallax_ws_frames_total", &label)
                    - sum(&before, "parallax_ws_frames_total", &label)
            )
        })
        .collect();
    println!("frames: {}", results.join(", "));
    let skew = |samples: &[prom::Sample]| -> PromHistogram {
        prom::histogram(samples, "parallax_ws_delivery_skew_seconds", &[])
    };
    let skew = skew(&after).since(&skew(&before));
    let negative = sum(&after, "parallax_ws_delivery_skew_negative_total", &[])
        - sum(&before, "parallax_ws_delivery_skew_negative_total", &[]);
    println!(
        "skew |shadow - primary| over {} pairs: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms; shadow first in {negative}",
        skew.count,
        skew.quantile(0.5) * 1e3,
        skew.quantile(0.99) * 1e3,
        skew.quantile(0.999) * 1e3,
    );
    for (name, h) in [
        ("through the proxy", &through),
        ("direct to the primary", &plain),
    ] {
        if !h.is_empty() {
            println!(
                "client latency {name}: {} frames, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                h.len(),
                h.value_at_quantile(0.5) as f64 / 1e3,
                h.value_at_quantile(0.99) as f64 / 1e3,
                h.max() as f64 / 1e3
            );
        }
    }
    println!(
        "proxy CPU during the broadcasts {cpu:.2} s ({:.1} µs per frame the clients got); RSS at the end {:.1} MiB",
        cpu * 1e6 / through.len().max(1) as f64,
        proxy.usage()?.rss_bytes as f64 / 1048576.0
    );
    if let Some(c) = counts {
        let frames = through.len().max(1) as f64;
        println!(
            "callgrind per frame the clients got: {:.0} instructions, {:.2} mallocs ({} frames)",
            c.instructions as f64 / frames,
            c.mallocs as f64 / frames,
            through.len()
        );
    }
    for w in workers.iter_mut().chain(direct_workers.iter_mut()) {
        let _ = w.command("exit");
    }
    drop(front);
    let _ = std::fs::remove_dir_all(&logs);
    Ok(())
}

fn free_addr() -> Result<SocketAddr> {
    Ok((Ipv4Addr::LOCALHOST, child::free_port()?).into())
}

/// The proxy's `/metrics`, parsed (none for nginx).
fn scrape(admin: Option<SocketAddr>) -> Result<Vec<prom::Sample>> {
    match admin {
        Some(admin) => Ok(prom::parse(&http(admin, "GET", "/metrics", "")?)),
        None => Ok(Vec::new()),
    }
}

/// How a compared frame can end.
const RESULTS: [&str; 7] = [
    "matched",
    "missing",
    "extra",
    "different",
    "reordered",
    "overflow",
    "unresolved",
];

/// Compared frames decided so far, of every result.
fn decided(samples: &[prom::Sample]) -> f64 {
    RESULTS
        .iter()
        .map(|r| sum(samples, "parallax_ws_frames_total", &[("result", r)]))
        .sum()
}

/// The sum of `name`'s samples with these labels, 0 when there is none.
fn sum(samples: &[prom::Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    prom::sum(samples, name, labels).unwrap_or(0.0)
}

/// One HTTP/1.1 request on a fresh connection; the body of a 2xx answer.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let status = answer.get(9..12).unwrap_or("");
    if !status.starts_with('2') {
        return Err(format!("{method} {path}: {}", answer.lines().next().unwrap_or("")).into());
    }
    Ok(answer.split_once("\r\n\r\n").map_or("", |x| x.1).to_owned())
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

// ------------------------------------------------------------- workers

struct Worker {
    connected: usize,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn spawn(server: SocketAddr, n: usize, first: usize) -> Result<Worker> {
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "clients",
                &server.to_string(),
                &n.to_string(),
                &first.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let connected: usize = parts.next().ok_or("no hello")?.parse()?;
        let failed: usize = parts.next().ok_or("no hello")?.parse()?;
        if failed > 0 {
            eprintln!(
                "{failed} connections failed: {}",
                parts.collect::<Vec<_>>().join(" ")
            );
        }
        Ok(Worker {
            connected,
            child,
            stdin,
            stdout,
        })
    }

    fn command(&mut self, command: &str) -> Result<String> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(line.trim().to_owned())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn merged(workers: &mut [Worker]) -> Result<Histogram<u64>> {
    let mut all = new_histogram();
    for w in workers {
        let hex = w.command("report")?;
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<std::result::Result<_, _>>()?;
        let h: Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice())?;
        all.add(h)?;
    }
    Ok(all)
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

// ------------------------------------------------------------- the proxy

/// What the clients connect to: parallax (this binary's `proxy`, or
/// `$PARALLAX_PROXY_BIN`) or nginx; its process group's CPU and RSS are
/// the figures.
struct Front {
    process: ChildProcess,
    /// Parallax's admin listener (its metrics); none for nginx.
    admin: Option<SocketAddr>,
    /// Where callgrind writes, when under it.
    callgrind: Option<std::path::PathBuf>,
}

impl Front {
    #[allow(clippy::too_many_arguments)]
    fn parallax(
        logs: &std::path::Path,
        listen: SocketAddr,
        primary: SocketAddr,
        shadow: SocketAddr,
        mirror_percent: f64,
        workers: usize,
        callgrind: bool,
    ) -> Result<Front> {
        let admin = free_addr()?;
        let config = logs.join("proxy.toml");
        let mut service = ProxyService::new(
            "fanout",
            &listen.to_string(),
            &primary.to_string(),
            &shadow.to_string(),
        );
        service.ws_match_window_ms = Some(10_000);
        service.mirror_percent = mirror_percent;
        std::fs::write(
            &config,
            config_builder::render(&admin.to_string(), &[service])?,
        )?;
        let config = config.display().to_string();
        let (program, args) = match std::env::var("PARALLAX_PROXY_BIN") {
            Ok(bin) => {
                let mut args = Vec::new();
                if std::path::Path::new(&bin)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("parallax"))
                {
                    args.push("proxy".to_owned());
                }
                args.extend(["--config".to_owned(), config]);
                (bin, args)
            }
            Err(_) => (
                std::env::current_exe()?.display().to_string(),
                vec!["proxy".to_owned(), config],
            ),
        };
        let mut spec = ChildSpec::new("the proxy", program, logs.join("proxy.log"));
        spec.args = args;
        if workers > 0 {
            spec.env
                .push(("TOKIO_WORKER_THREADS".into(), workers.to_string()));
        }
        spec.ready = Readiness::Http {
            addr: admin.to_string(),
            path: "/healthz".into(),
        };
        let callgrind = callgrind.then(|| logs.join("callgrind"));
        Ok(Front {
            process: spawn_maybe_under_callgrind(spec, callgrind.as_deref())?,
            admin: Some(admin),
            callgrind,
        })
    }

    /// nginx as a WebSocket proxy in front of `primary`: `proxy_pass` over
    /// HTTP/1.1 with the upgrade headers, as its documentation gives it;
    /// no access log (parallax keeps none either). One worker is `master_process
    /// off` (a single process, as under callgrind).
    fn nginx(
        logs: &std::path::Path,
        listen: SocketAddr,
        primary: SocketAddr,
        workers: usize,
        callgrind: bool,
    ) -> Result<Front> {
        let prefix = logs.join("nginx");
        std::fs::create_dir_all(&prefix)?;
        let processes = if workers <= 1 || callgrind {
            "master_process off;".to_owned()
        } else {
            format!("worker_processes {workers};")
        };
        let p = prefix.display();
        let conf = format!(
            r#"{processes}
daemon off;
pid {p}/nginx.pid;
error_log {p}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 19000; }}
http {{
  access_log off;
  client_body_temp_path {p}/body;
  proxy_temp_path {p}/proxy;
  fastcgi_temp_path {p}/fastcgi;
  uwsgi_temp_path {p}/uwsgi;
  scgi_temp_path {p}/scgi;
  server {{
    listen {listen};
    location / {{
      proxy_pass http://{primary};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }}
  }}
}}
"#
        );
        let file = prefix.join("nginx.conf");
        std::fs::write(&file, conf)?;
        let mut spec = ChildSpec::new("nginx", "nginx", logs.join("nginx.log"));
        spec.args = vec![
            "-p".into(),
            prefix.display().to_string(),
            "-c".into(),
            file.display().to_string(),
        ];
        spec.ready = Readiness::Tcp(listen.to_string());
        let callgrind = callgrind.then(|| logs.join("callgrind"));
        Ok(Front {
            process: spawn_maybe_under_callgrind(spec, callgrind.as_deref())?,
            admin: None,
            callgrind,
        })
    }

    /// Dumps callgrind's counters (since they were last zeroed or dumped)
    /// into a folder of their own (`$PARALLAX_WS_BENCH_KEEP`/dump-N, kept
    /// for `callgrind_annotate`, when that is set) and returns them.
    fn callgrind_dump(&self) -> Result<Counts> {
        let dir = self.callgrind.as_ref().ok_or("not under callgrind")?;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_file() {
                std::fs::remove_file(path)?;
            }
        }
        callgrind_control("-d", self.process.pid())?;
        std::thread::sleep(Duration::from_secs(1));
        let mut counts = Counts::default();
        let keep = std::env::var_os("PARALLAX_WS_BENCH_KEEP").map(std::path::PathBuf::from);
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if !path.is_file() {
                continue;
            }
            counts.add(&std::fs::read_to_string(&path)?);
            if let (Some(keep), Some(name)) = (&keep, path.file_name()) {
                std::fs::create_dir_all(keep)?;
                std::fs::copy(&path, keep.join(name))?;
            }
        }
        if counts.instructions == 0 {
            return Err(format!("callgrind wrote no counters into {}", dir.display()).into());
        }
        Ok(counts)
    }
}

/// `spec` as it is, or under `valgrind --tool=callgrind` writing into `dir`.
fn spawn_maybe_under_callgrind(
    mut spec: ChildSpec,
    dir: Option<&std::path::Path>,
) -> Result<ChildProcess> {
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
        let mut args = vec![
            "--tool=callgrind".to_owned(),
            format!("--callgrind-out-file={}/cg.%p", dir.display()),
            spec.program.display().to_string(),
        ];
        args.append(&mut spec.args);
        spec.args = args;
        spec.program = "valgrind".into();
        spec.ready_timeout = Duration::from_secs(180);
    }
    Ok(ChildProcess::spawn(&spec)?)
}

fn callgrind_control(what: &str, pid: u32) -> Result<()> {
    let status = Command::new("callgrind_control")
        .args([what, &pid.to_string()])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("callgrind_control {what} {pid}: {status}").into());
    }
    Ok(())
}

/// Callgrind's counters over one interval.
#[derive(Default)]
struct Counts {
    instructions: u64,
    mallocs: u64,
}

impl Counts {
    /// Adds what `front`'s callgrind counted since its last zero or dump.
    fn add_dump(&mut self, front: &Front) -> Result<()> {
        let dump = front.callgrind_dump()?;
        self.instructions += dump.instructions;
        self.mallocs += dump.mallocs;
        Ok(())
    }

    /// Adds one callgrind output file: its `totals:` line, and the `calls=`
    /// lines under a `cfn=` naming `malloc`, `calloc` or `realloc` (names
    /// are given once as `(id) name`, then as `(id)`).
    fn add(&mut self, text: &str) {
        let mut names = std::collections::HashMap::<&str, &str>::new();
        let mut callee_allocates = false;
        for line in text.lines() {
            if let Some(total) = line.strip_prefix("totals:") {
                self.instructions += total
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            } else if let Some(callee) = line.strip_prefix("cfn=") {
                let name = match callee.split_once(") ") {
                    Some((id, name)) => {
                        names.insert(id, name);
                        name
                    }
                    None => names
                        .get(callee.trim_end_matches(')'))
                        .copied()
                        .unwrap_or(callee),
                };
                callee_allocates = matches!(name, "malloc" | "calloc" | "realloc");
            } else if let Some(calls) = line.strip_prefix("calls=") {
                if callee_allocates {
                    self.mallocs += calls
                        .split_whitespace()
                        .next()
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or(0);
                }
                callee_allocates = false;
            } else if let Some(function) = line.strip_prefix("fn=") {
                // `fn=` names share the id space with `cfn=`.
                if let Some((id, name)) = function.split_once(") ") {
                    names.insert(id, name);
                }
            }
        }
    }
}

fn proxy(config: &str) -> Result<()> {
    let config = parallax_proxy::Config::load(config.as_ref())?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(parallax_proxy::run(&config, std::future::pending()))?;
    Ok(())
}

// ------------------------------------------------------------- clients

/// `clients SERVER N FIRST`: opens N subscribers of the bench topic (source
/// addresses 127.0.0.2–5 by global index), prints `connected failed
/// [first error]`, then answers `reset`, `report` (hex of the V2-serialised
/// latency histogram, µs from each frame's `published_at_unix_us`) and
/// `exit` on stdin.
fn clients(args: &[String]) -> Result<()> {
    let server: SocketAddr = args[0].parse()?;
    let n: usize = args[1].parse()?;
    let first: usize = args[2].parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let latency = Arc::new(Mutex::new(new_histogram()));
    let (connected, failed, error) = runtime.block_on(async {
        let gate = Arc::new(tokio::sync::Semaphore::new(128));
        let mut handshakes = tokio::task::JoinSet::new();
        for i in 0..n {
            let gate = Arc::clone(&gate);
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + ((first + i) % 4) as u8));
            handshakes.spawn(async move {
                let _permit = gate.acquire_owned().await;
                subscribe(server, source).await
            });
        }
        let (mut ok, mut failed, mut error) = (0, 0, None);
        while let Some(done) = handshakes.join_next().await {
            match done.expect("no panic") {
                Ok(stream) => {
                    ok += 1;
                    tokio::spawn(read_frames(stream, Arc::clone(&latency)));
                }
                Err(e) => {
                    failed += 1;
                    error.get_or_insert(e.to_string());
                }
            }
        }
        (ok, failed, error)
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{connected} {failed} {}", error.unwrap_or_default())?;
    out.flush()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(std::result::Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    runtime.block_on(async {
        while let Some(line) = rx.recv().await {
            let mut answer = String::new();
            match line.trim() {
                "reset" => latency.lock().expect("not poisoned").reset(),
                "report" => {
                    let mut bytes = Vec::new();
                    V2Serializer::new()
                        .serialize(&latency.lock().expect("not poisoned"), &mut bytes)
                        .expect("serialisable");
                    answer = bytes.iter().map(|b| format!("{b:02x}")).collect();
                }
                "exit" => {
                    writeln!(out, "bye")?;
                    return Ok::<_, std::io::Error>(());
                }
                _ => {}
            }
            writeln!(out, "{answer}")?;
            out.flush()?;
        }
        Ok(())
    })?;
    Ok(())
}

async fn subscribe(server: SocketAddr, source: IpAddr) -> std::io::Result<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let mut stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET /v1/subscribe?topics={TOPIC} HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    // The answer head, byte by byte: nothing past it may be consumed here.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if stream.read(&mut b).await? == 0 {
            return Err(std::io::Error::other("closed during the handshake"));
        }
        head.push(b[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&head).into_owned(),
        ));
    }
    Ok(stream)
}

/// Reads frames with no buffer kept between reads; times each text frame
/// against its `published_at_unix_us`.
async fn read_frames(stream: tokio::net::TcpStream, latency: Arc<Mutex<Histogram<u64>>>) {
    let mut reader = Reader::new(4096);
    let mut events = Vec::new();
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        let mut buf = [0u8; 4096];
        match stream.try_read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if reader.feed(&buf[..n], &mut events).is_err() {
                    return;
                }
                let now = now_us();
                for event in events.drain(..) {
                    if let Event::Message { payload, .. } = event {
                        let text = String::from_utf8_lossy(&payload);
                        let at = text
                            .split("\"published_at_unix_us\":")
                            .nth(1)
                            .and_then(|r| r.split([',', '}']).next())
                            .and_then(|v| v.parse::<u64>().ok());
                        if let Some(at) = at {
                            let _ = latency
                                .lock()
                                .expect("not poisoned")
                                .record(now.saturating_sub(at).max(1));
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}
