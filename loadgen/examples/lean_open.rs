//! A lean open-model HTTP/1.1 load generator: the instrument for a proxy's
//! added median at a fixed rate on a machine whose CPUs the generator
//! shares with what it measures.
//!
//! `parallax load http` (goose, reqwest, a multi-threaded tokio runtime)
//! is the general tool; here it has two costs that land in every path's
//! latency. tokio's timer ticks in whole milliseconds, so its users wake
//! on the tick after their slot: at 5,000 req/s five requests leave
//! together each millisecond, queue behind each other in the one-worker
//! proxy, and each carries up to a millisecond of timer lateness from its
//! slot. And its CPU per request competes with the proxy and the backends
//! for two CPUs.
//!
//! This one keeps the schedule and its correction for coordinated
//! omission (request `n` is due at `start + offset(n)`; latency runs from
//! the earlier of the slot and the actual send, as `parallax_loadgen::pacing`
//! measures it) but sends from plain threads, each with one blocking
//! keep-alive connection: a thread sleeps with `nanosleep` (its timer slack
//! set to 1 ns through `/proc/thread-self/timerslack_ns`, so the wake is
//! within microseconds of the deadline) until `early` before its slot,
//! writes a prebuilt request and reads the answer by its Content-Length.
//! Per request: one wake-up to send, one to read. Arrivals are evenly
//! spaced (`uniform`, the schedule `parallax load` means), a seeded
//! Poisson process (`poisson`, independent arrivals as real clients make
//! them), or `ticked`: the uniform slots, each sent on the first whole
//! millisecond after it as a tokio timer fires, and measured from the slot
//! — what goose's users do, without goose, to tell its timer from the
//! rest of its cost. Slots taken more than 10 ms late are counted, as in
//! `pacing`.
//!
//! ```text
//! cargo build --release -p parallax-loadgen --example lean_open
//! target/release/examples/lean_open --target 127.0.0.1:8080 --path /v1/sessions/bench \
//!     --rate 5000 --duration-secs 10 --warmup-secs 2 --out load.json
//! ```
//!
//! It writes the fields of `parallax load`'s load.json that scripts read
//! (`latency.p50_us`, `achieved_rate_per_sec`, `errors`, `late`, …), plus
//! its own CPU per request. Only what a benchmark of a cache GET needs:
//! GET or a body-less method, answers framed by Content-Length.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use hdrhistogram::Histogram;
use parallax_loadgen::pacing::latency_histogram;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// A slot taken later than this after its time counts as late.
const LATE_AFTER: Duration = Duration::from_millis(10);
/// Every answer must arrive within this (a timeout is an error).
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
struct Args {
    /// host:port of the server or the proxy in front of it.
    #[arg(long)]
    target: SocketAddr,
    /// Path and query of every request.
    #[arg(long, default_value = "/")]
    path: String,
    /// Its method (no body is sent).
    #[arg(long, default_value = "GET")]
    method: String,
    /// Requests per second.
    #[arg(long)]
    rate: f64,
    /// Measured seconds, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Seconds sent before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    /// Sending threads, each with its own connection: the most requests in
    /// flight. Must cover rate × latency with room for stalls.
    #[arg(long, default_value_t = 32)]
    senders: usize,
    /// `uniform` (evenly spaced slots), `poisson` (exponential gaps) or
    /// `ticked` (uniform slots sent on the next whole millisecond).
    #[arg(long, default_value = "uniform")]
    arrivals: String,
    /// Seed of the Poisson gaps.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A thread wakes this many µs before its slot and sends at once (its
    /// latency then runs from the send): room for the wake-up itself.
    #[arg(long, default_value_t = 20)]
    early_us: u64,
    /// Where to write the report (JSON).
    #[arg(long)]
    out: PathBuf,
}

/// One sender's share of the report.
struct Part {
    latency_us: Histogram<u64>,
    measured: u64,
    errors: u64,
    late: u64,
    sum_us: u64,
    last_done: Option<Instant>,
    first_error: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be above zero (requests per second)");
    }
    if args.senders == 0 {
        bail!("--senders must be at least 1");
    }
    let offsets = Arc::new(schedule(&args)?);
    let ticked = args.arrivals == "ticked";
    let warmup = Duration::from_secs_f64(args.warmup_secs);
    let request = Arc::new(
        format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lean_open\r\n\r\n",
            args.method, args.path, args.target
        )
        .into_bytes(),
    );
    let me = std::process::id();
    let cpu_before = parallax_process::procstat::read(me)?.cpu_seconds;
    // Every sender connects before the schedule starts.
    let start = Instant::now() + Duration::from_millis(300);
    let next = Arc::new(AtomicU64::new(0));
    let early = Duration::from_micros(args.early_us);
    let threads: Vec<_> = (0..args.senders)
        .map(|_| {
            let (offsets, next, request) = (offsets.clone(), next.clone(), request.clone());
            let target = args.target;
            std::thread::spawn(move || {
                let wake = Wake {
                    start,
                    early,
                    ticked,
                };
                send_slots(target, &request, &offsets, &next, wake, warmup)
            })
        })
        .collect();
    let mut latency_us = latency_histogram();
    let (mut measured, mut errors, mut late, mut sum_us) = (0, 0, 0, 0);
    let mut last_done = None;
    let mut first_error = None;
    for t in threads {
        let part = t.join().expect("a sender thread panicked");
        latency_us.add(&part.latency_us)?;
        measured += part.measured;
        errors += part.errors;
        late += part.late;
        sum_us += part.sum_us;
        last_done = last_done.max(part.last_done);
        first_error = first_error.or(part.first_error);
    }
    let cpu = parallax_process::procstat::read(me)?.cpu_seconds - cpu_before;
    let elapsed = last_done
        .map(|d: Instant| d.saturating_duration_since(start + warmup).as_secs_f64())
        .unwrap_or(0.0);
    let sent = offsets.len() as f64;
    let q = |p: f64| latency_us.value_at_quantile(p);
    let report = serde_json::json!({
        "schema": "parallax.lean-open/v1",
        "target": args.target.to_string(),
        "arrivals": args.arrivals,
        "target_rate_per_sec": args.rate,
        "achieved_rate_per_sec": if elapsed > 0.0 { measured as f64 / elapsed } else { 0.0 },
        "requests": measured,
        "errors": errors,
        "late": late,
        "latency": {
            "p50_us": q(0.5), "p90_us": q(0.9), "p99_us": q(0.99), "p999_us": q(0.999),
            "max_us": latency_us.max(), "mean_us": sum_us as f64 / measured.max(1) as f64,
        },
        "generator_cpu_seconds": cpu,
        "generator_cpu_us_per_request": cpu * 1e6 / sent,
        "first_error": first_error,
    });
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("cannot write --out {}", args.out.display()))?;
    eprintln!(
        "lean_open: {measured} requests at {:.0}/s, p50 {} µs, p99 {} µs, {errors} errors, {late} late, {:.1} µs CPU per request",
        report["achieved_rate_per_sec"].as_f64().unwrap_or(0.0),
        q(0.5),
        q(0.99),
        cpu * 1e6 / sent
    );
    if errors > 0 {
        bail!("{errors} requests failed; first: {first_error:?}");
    }
    Ok(())
}

/// Every slot's offset from the start, warm-up included.
fn schedule(args: &Args) -> anyhow::Result<Vec<Duration>> {
    let total = args.warmup_secs + args.duration_secs;
    let n = (total * args.rate).ceil() as usize;
    match args.arrivals.as_str() {
        "uniform" | "ticked" => Ok((0..n)
            .map(|i| Duration::from_secs_f64(i as f64 / args.rate))
            .collect()),
        "poisson" => {
            let mut rng = SmallRng::seed_from_u64(args.seed);
            let mut t = 0.0;
            let mut offsets = Vec::with_capacity(n);
            while t < total {
                offsets.push(Duration::from_secs_f64(t));
                // An exponential gap: -ln(U) / rate, U in (0, 1].
                t += -(1.0 - rng.random::<f64>()).ln() / args.rate;
            }
            Ok(offsets)
        }
        other => bail!("--arrivals {other:?}: give uniform, poisson or ticked"),
    }
}

/// When a sender sends a slot's request.
#[derive(Clone, Copy)]
struct Wake {
    start: Instant,
    /// How long before its slot a sender may send.
    early: Duration,
    /// Send on the first whole millisecond (from the start) at or after
    /// the slot instead, as a millisecond timer wheel does.
    ticked: bool,
}

impl Wake {
    fn at(self, offset: Duration) -> Instant {
        if self.ticked {
            let ms = offset.as_nanos().div_ceil(1_000_000) as u64;
            self.start + Duration::from_millis(ms)
        } else {
            self.start + offset.saturating_sub(self.early)
        }
    }
}

fn send_slots(
    target: SocketAddr,
    request: &[u8],
    offsets: &[Duration],
    next: &AtomicU64,
    wake: Wake,
    warmup: Duration,
) -> Part {
    // Without this the kernel may add up to 50 µs to every sleep.
    let _ = std::fs::write("/proc/thread-self/timerslack_ns", "1");
    let mut part = Part {
        latency_us: latency_histogram(),
        measured: 0,
        errors: 0,
        late: 0,
        sum_us: 0,
        last_done: None,
        first_error: None,
    };
    let mut conn = Conn::new(target);
    let _ = conn.connect();
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed) as usize;
        let Some(&offset) = offsets.get(n) else {
            break;
        };
        let due = wake.start + offset;
        let at = wake.at(offset);
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        let sent = Instant::now();
        let result = conn.exchange(request);
        let done = Instant::now();
        if offset < warmup {
            continue;
        }
        if sent > due + LATE_AFTER {
            part.late += 1;
        }
        let us = (done.duration_since(due.min(sent)).as_micros() as u64).max(1);
        part.latency_us.saturating_record(us);
        part.sum_us += us;
        part.measured += 1;
        part.last_done = Some(done);
        if let Err(e) = result {
            part.errors += 1;
            part.first_error.get_or_insert(e);
        }
    }
    part
}

/// One blocking keep-alive connection, reconnected after a failure.
struct Conn {
    target: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    fn new(target: SocketAddr) -> Self {
        Self {
            target,
            stream: None,
            buf: vec![0; 64 * 1024],
        }
    }

    fn connect(&mut self) -> Result<&mut TcpStream, String> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.target, TIMEOUT)
                .map_err(|e| format!("connect {}: {e}", self.target))?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(TIMEOUT))
                .map_err(|e| e.to_string())?;
            self.stream = Some(s);
        }
        Ok(self.stream.as_mut().expect("just connected"))
    }

    /// Sends the request and reads one answer; an error drops the
    /// connection (the next request opens a new one).
    fn exchange(&mut self, request: &[u8]) -> Result<(), String> {
        let result = self.try_exchange(request);
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn try_exchange(&mut self, request: &[u8]) -> Result<(), String> {
        let mut buf = std::mem::take(&mut self.buf);
        let result = (|| {
            let stream = self.connect()?;
            stream
                .write_all(request)
                .map_err(|e| format!("write: {e}"))?;
            let mut have = 0;
            loop {
                let got = stream
                    .read(&mut buf[have..])
                    .map_err(|e| format!("read: {e}"))?;
                if got == 0 {
                    return Err("the server closed the connection".into());
                }
                have += got;
                if let Some(head_end) = find(&buf[..have], b"\r\n\r\n") {
                    let head = &buf[..head_end];
                    if !head.starts_with(b"HTTP/1.1 2") {
                        let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
                        return Err(format!("answer {:?}", String::from_utf8_lossy(line)));
                    }
                    let length = content_length(head)
                        .ok_or("an answer without Content-Length (only those are read)")?;
                    let whole = head_end + 4 + length;
                    if whole > buf.len() {
                        return Err(format!("an answer of {whole} bytes (at most 64 KiB)"));
                    }
                    while have < whole {
                        let got = stream
                            .read(&mut buf[have..whole])
                            .map_err(|e| format!("read body: {e}"))?;
                        if got == 0 {
                            return Err("the server closed inside the body".into());
                        }
                        have += got;
                    }
                    return Ok(());
                }
                if have == buf.len() {
                    return Err("an answer head over 64 KiB".into());
                }
            }
        })();
        self.buf = buf;
        result
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The Content-Length of an answer head, by a case-insensitive name.
fn content_length(head: &[u8]) -> Option<usize> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}
