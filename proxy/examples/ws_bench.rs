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
use parallax_process::procstat;
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
        _ => Err("usage: ws_bench run [--checkpoints 2000,5000] [--notifications 30] [--rate 2] [--per-worker 2500] [--direct 500] [--settle-secs 5] [--mirror-percent 100]".into()),
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

    let (listen, admin) = (free_addr()?, free_addr()?);
    let config = logs.join("proxy.toml");
    let mut service = ProxyService::new(
        "fanout",
        &listen.to_string(),
        &go_addr.to_string(),
        &rust_addr.to_string(),
    );
    service.ws_match_window_ms = Some(10_000);
    service.mirror_percent = mirror_percent;
    std::fs::write(
        &config,
        config_builder::render(&admin.to_string(), &[service])?,
    )?;
    let mut spec = ChildSpec::new(
        "the proxy",
        std::env::current_exe()?,
        logs.join("proxy.log"),
    );
    spec.args = vec!["proxy".into(), config.display().to_string()];
    spec.ready = Readiness::Http {
        addr: admin.to_string(),
        path: "/healthz".into(),
    };
    let proxy = ChildProcess::spawn(&spec)?;
    let proxy_pid = proxy.pid();
    std::thread::sleep(Duration::from_secs(1));
    let baseline = rss_bytes(proxy_pid)?;
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
        let rss = rss_bytes(proxy_pid)?;
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
    let cpu_before = cpu_seconds(proxy_pid)?;
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
    let cpu = cpu_seconds(proxy_pid)? - cpu_before;
    let after = scrape(admin)?;
    let through = merged(&mut workers)?;
    let plain = merged(&mut direct_workers)?;
    let results: Vec<String> = [
        "matched",
        "missing",
        "extra",
        "different",
        "reordered",
        "overflow",
        "unresolved",
    ]
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
        rss_bytes(proxy_pid)? as f64 / 1048576.0
    );
    for w in workers.iter_mut().chain(direct_workers.iter_mut()) {
        let _ = w.command("exit");
    }
    drop(proxy);
    let _ = std::fs::remove_dir_all(&logs);
    Ok(())
}

fn free_addr() -> Result<SocketAddr> {
    Ok((Ipv4Addr::LOCALHOST, child::free_port()?).into())
}

/// The proxy's `/metrics`, parsed.
fn scrape(admin: SocketAddr) -> Result<Vec<prom::Sample>> {
    Ok(prom::parse(&http(admin, "GET", "/metrics", "")?))
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

fn rss_bytes(pid: u32) -> Result<u64> {
    Ok(procstat::read(pid)?.rss_bytes)
}

/// User + system CPU of a process, seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    Ok(procstat::read(pid)?.cpu_seconds)
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
