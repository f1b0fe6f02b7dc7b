//! The session cache at the seed's ~4 GB working set under a mixed GET/PUT
//! load: capacity at an SLO, then the tail request by request, so that Go's
//! GC cycles can be lined up with it (`scripts/cache-gc-tail.sh` starts the
//! twins, keeps Go's `GODEBUG=gctrace=1` lines and summarises).
//!
//! Why not `parallax run --find-capacity`: the runner's probes start from a
//! preload of a few MB; filling 4 GB takes ~30 s per twin and is done once
//! here, before every probe, by [`churn::fill`] (values 64 B–64 KiB, as in
//! the hour of churn). Why not per-minute percentiles (`churn_hour`): a GC
//! cycle's mark phase lasts a fraction of a second, so the tail has to be
//! seen at that grain. This driver therefore keeps every request's slot
//! time and latency in the tail phase and writes them raw; the summary bins
//! them (100 ms) and marks the bins that overlap a GC cycle.
//!
//! Phases, all against already-running twins (one or more `--twin`):
//! 1. **fill** each twin to 1.1 × its capacity (closed loop, unmeasured);
//! 2. **ladder**: for each rate, probes in the order A B … B A (reversed
//!    on every other rung), each twin alone while the others idle; a probe
//!    holds when its p99 (from the slots' intended times) is under the SLO
//!    and under 1 % of its slots were late, failed or never sent. A twin's
//!    capacity is the highest rung at which every one of its probes held,
//!    every lower rung held too; a twin stops being probed after a rung
//!    where none of its probes held (so each probe position's own ladder
//!    can be read as an A/A in time);
//! 3. **tail**: each twin alone for `--tail-secs` at one fixed rate (by
//!    default `--tail-share` of the lowest capacity found, or of the lowest
//!    rung when a twin held none; the same rate for every twin), every request
//!    written to `tail-<twin>.csv`.
//!
//! After every step the twin's `/metrics` is read for Go's
//! `go_memstats_last_gc_time_seconds` (wall clock at the end of the last
//! cycle), which pins gctrace's "seconds since start" to the wall clock.
//!
//! ```text
//! cargo build --release -p parallax-loadgen --example cache_gc_tail
//! target/release/examples/cache_gc_tail --twin go=127.0.0.1:18081:1234 \
//!     --twin rust=127.0.0.1:18082:1240 --ladder 2000,3000,4000 --out DIR
//! ```

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Parser;
use http::{Method, StatusCode};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

use parallax_loadgen::cache::{classify, CacheOutcome, Op};
use parallax_loadgen::churn::{self, ChurnConfig};
use parallax_loadgen::http::Connection;
use parallax_loadgen::pacing::{self, latency_histogram, Plan, Schedule};

#[derive(Debug, Parser)]
struct Args {
    /// A running twin as `name=host:port:pid` (repeat; the order is A, B, …).
    #[arg(long = "twin", required = true)]
    twins: Vec<TwinArg>,
    /// The twins' `--capacity-bytes`; the fill writes 1.1 × this.
    #[arg(long, default_value_t = 4 << 30)]
    capacity_bytes: u64,
    /// Skip the fill (the twins are already full).
    #[arg(long)]
    no_fill: bool,
    /// Share of requests that are GETs; the rest are PUTs.
    #[arg(long, default_value_t = 0.5)]
    get_share: f64,
    /// Keys are uniform over this many times the keys the fill stored, so
    /// PUTs keep evicting and GETs hit about 1 / factor of the time.
    #[arg(long, default_value_t = 1.25)]
    key_space_factor: f64,
    #[arg(long, default_value_t = 64)]
    min_value_bytes: usize,
    #[arg(long, default_value_t = 65536)]
    max_value_bytes: usize,
    /// Keep-alive connections per twin (senders); enough that a rate never
    /// runs out of them before the SLO's bound does.
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// Ladder rates in requests/s, comma-separated (empty: no ladder).
    #[arg(long, value_delimiter = ',')]
    ladder: Vec<f64>,
    /// Measured seconds per probe, after `--warmup-secs` at the same rate.
    #[arg(long, default_value_t = 8.0)]
    probe_secs: f64,
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    /// The SLO: p99 from the slots' intended times under this.
    #[arg(long, default_value_t = 20.0)]
    slo_p99_ms: f64,
    /// And at most this share of slots late (sent more than half the SLO
    /// after their time), failed or never sent, in percent.
    #[arg(long, default_value_t = 1.0)]
    max_bad_pct: f64,
    /// The tail phase's rate (requests/s); default: `--tail-share` of the
    /// lowest capacity the ladder found.
    #[arg(long)]
    tail_rate: Option<f64>,
    #[arg(long, default_value_t = 0.8)]
    tail_share: f64,
    /// Seconds of the tail phase per twin (0: none).
    #[arg(long, default_value_t = 120.0)]
    tail_secs: f64,
    /// Directory for steps.csv and tail-<twin>.csv.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Clone)]
struct TwinArg {
    name: String,
    addr: SocketAddr,
    pid: u32,
}

impl FromStr for TwinArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("--twin {s:?}: expected name=host:port:pid");
        let (name, rest) = s.split_once('=').ok_or_else(bad)?;
        let (addr, pid) = rest.rsplit_once(':').ok_or_else(bad)?;
        Ok(Self {
            name: name.to_owned(),
            addr: addr.parse().map_err(|_| bad())?,
            pid: pid.parse().map_err(|_| bad())?,
        })
    }
}

/// One request as the tail phase keeps it.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Slot time, µs after the step's start.
    due_us: u64,
    /// From the earlier of the slot's time and the send, to the answer.
    latency_us: u64,
    op: Op,
    /// HTTP status, 0 for no answer.
    status: u16,
    /// Sent more than `late_after` after its slot.
    late: bool,
}

/// One connection's sender: mixed GETs and PUTs over the filled key space,
/// keeping a [`Record`] per request (a push into its own Vec: no locks).
struct Mixed {
    connection: Connection,
    rng: SmallRng,
    noise: Bytes,
    min_value: usize,
    max_value: usize,
    key_space: u64,
    get_share: f64,
    start: Instant,
    schedule: Schedule,
    late_after: Duration,
    records: Vec<Record>,
}

impl pacing::Sender for Mixed {
    type Outcome = CacheOutcome;

    async fn send(&mut self, n: u64) -> CacheOutcome {
        let offset = self.schedule.offset(n).unwrap_or_default();
        let due = self.start + offset;
        let key = self.rng.random_range(0..self.key_space);
        let path = format!("/v1/sessions/c-{key}");
        let (op, method, body) = if self.rng.random_bool(self.get_share) {
            (Op::Get, Method::GET, Bytes::new())
        } else {
            let len = self.rng.random_range(self.min_value..=self.max_value);
            (Op::Put, Method::PUT, self.noise.slice(..len))
        };
        let sent = Instant::now();
        let answer = self.connection.send(method, &path, body).await;
        let done = Instant::now();
        let status = answer.as_ref().map(|a| a.status.as_u16()).unwrap_or(0);
        self.records.push(Record {
            due_us: offset.as_micros() as u64,
            latency_us: (done.duration_since(due.min(sent)).as_micros() as u64).max(1),
            op,
            status,
            late: sent > due + self.late_after,
        });
        classify(op, answer.map(|a| a.status))
    }
}

/// What one step (a probe or a tail run) came to, from its records.
#[derive(Debug, Default)]
struct Step {
    requests: u64,
    gets: u64,
    hits: u64,
    puts: u64,
    late: u64,
    errors: u64,
    not_sent: u64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
}

impl Step {
    fn of(records: &[Record], from_us: u64, not_sent: u64) -> Self {
        let mut h = latency_histogram();
        let mut s = Step {
            not_sent,
            ..Step::default()
        };
        for r in records.iter().filter(|r| r.due_us >= from_us) {
            h.saturating_record(r.latency_us);
            s.requests += 1;
            s.late += u64::from(r.late);
            match (r.op, r.status) {
                (Op::Get, 200) => {
                    s.gets += 1;
                    s.hits += 1;
                }
                (Op::Get, 404) => s.gets += 1,
                (Op::Put, 204) => s.puts += 1,
                _ => s.errors += 1,
            }
        }
        s.p50_us = h.value_at_quantile(0.5);
        s.p99_us = h.value_at_quantile(0.99);
        s.p999_us = h.value_at_quantile(0.999);
        s.max_us = h.max();
        s
    }

    /// Late, failed and never-sent slots as a share of all slots, in %.
    fn bad_pct(&self) -> f64 {
        let all = self.requests + self.not_sent;
        if all == 0 {
            return 100.0;
        }
        (self.late + self.errors + self.not_sent) as f64 / all as f64 * 100.0
    }
}

struct Twin {
    arg: TwinArg,
    senders: Vec<Mixed>,
}

fn unix_ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()
}

/// Go's wall-clock time at the end of its last GC cycle, if it exports it.
async fn last_gc_unix_s(addr: SocketAddr) -> Option<f64> {
    let mut c = Connection::new(addr, Duration::from_secs(10));
    let (status, body) = c.get_body("/metrics").await.ok()?;
    if status != StatusCode::OK {
        return None;
    }
    let samples = parallax_process::prom::parse(std::str::from_utf8(&body).ok()?);
    parallax_process::prom::sum(&samples, "go_memstats_last_gc_time_seconds", &[])
        .filter(|&t| t > 0.0)
}

/// What a step measured, as it appears in steps.csv.
struct StepRow<'a> {
    phase: &'a str,
    twin: &'a str,
    rung: usize,
    probe: usize,
    rate: f64,
    started: SystemTime,
    measured_from_s: f64,
    secs: f64,
    step: &'a Step,
    held: bool,
    cpu_s: f64,
    rss_end: u64,
    last_gc: Option<f64>,
}

const STEPS_HEADER: &str = "phase,twin,rung,probe,rate,start_unix_ms,measured_from_s,secs,\
requests,achieved_per_s,gets,hits,puts,late,errors,not_sent,bad_pct,p50_us,p99_us,p999_us,\
max_us,held,cpu_us_per_req,rss_end,last_gc_unix_s";

impl StepRow<'_> {
    fn csv(&self) -> String {
        let s = self.step;
        format!(
            "{},{},{},{},{:.0},{},{:.1},{:.1},{},{:.1},{},{},{},{},{},{},{:.3},{},{},{},{},{},{:.1},{},{}",
            self.phase,
            self.twin,
            self.rung,
            self.probe,
            self.rate,
            unix_ms(self.started),
            self.measured_from_s,
            self.secs,
            s.requests,
            s.requests as f64 / self.secs,
            s.gets,
            s.hits,
            s.puts,
            s.late,
            s.errors,
            s.not_sent,
            s.bad_pct(),
            s.p50_us,
            s.p99_us,
            s.p999_us,
            s.max_us,
            self.held,
            self.cpu_s * 1e6 / s.requests.max(1) as f64,
            self.rss_end,
            self.last_gc.map(|t| format!("{t:.6}")).unwrap_or_default(),
        )
    }
}

/// Runs `warmup + secs` at `rate` against one twin; returns the unix time
/// the schedule started, the records (all of them) and the step's figures.
async fn step(
    twin: &mut Twin,
    rate: f64,
    warmup: f64,
    secs: f64,
    late_after: Duration,
) -> (SystemTime, Vec<Record>, Step, f64) {
    let duration = Duration::from_secs_f64(warmup + secs);
    let schedule = Schedule {
        rate_per_sec: rate,
        ramp: Duration::ZERO,
        duration,
        max_requests: u64::MAX,
    };
    let plan = Plan {
        schedule,
        warmup: Duration::from_secs_f64(warmup),
        late_after,
        early_by: pacing::EARLY_BY,
        // An overloaded twin is not waited for: what it could not take in
        // two seconds past the schedule counts as never sent.
        overrun: Duration::from_secs(2),
    };
    let start = Instant::now() + Duration::from_millis(20);
    let started = SystemTime::now() + Duration::from_millis(20);
    let mut senders = std::mem::take(&mut twin.senders);
    for s in &mut senders {
        s.start = start;
        s.schedule = schedule;
        s.late_after = late_after;
    }
    let cpu0 = parallax_process::procstat::read(twin.arg.pid).map_or(0.0, |u| u.cpu_seconds);
    let (report, senders) = pacing::run_from(start, plan, senders).await;
    let cpu1 = parallax_process::procstat::read(twin.arg.pid).map_or(0.0, |u| u.cpu_seconds);
    twin.senders = senders;
    let mut records: Vec<Record> = twin
        .senders
        .iter_mut()
        .flat_map(|s| std::mem::take(&mut s.records))
        .collect();
    records.sort_by_key(|r| r.due_us);
    let from_us = (warmup * 1e6) as u64;
    // The share of the CPU that fell in the measured part, by request count.
    let measured = records.iter().filter(|r| r.due_us >= from_us).count();
    let cpu = (cpu1 - cpu0) * measured as f64 / records.len().max(1) as f64;
    let figures = Step::of(&records, from_us, report.not_sent);
    (started, records, figures, cpu)
}

fn write_tail(path: &std::path::Path, records: &[Record]) -> anyhow::Result<()> {
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?,
    );
    writeln!(w, "due_us,latency_us,op,status,late")?;
    for r in records {
        let op = match r.op {
            Op::Get => 'G',
            Op::Put => 'P',
        };
        writeln!(
            w,
            "{},{},{op},{},{}",
            r.due_us,
            r.latency_us,
            r.status,
            u8::from(r.late)
        )?;
    }
    Ok(w.flush()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(0.0..=1.0).contains(&args.get_share) {
        bail!("--get-share must be within 0..=1 (a share of requests)");
    }
    if args.min_value_bytes == 0 || args.min_value_bytes > args.max_value_bytes {
        bail!("--min-value-bytes must be at least 1 and at most --max-value-bytes");
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("--out {}", args.out.display()))?;
    let late_after = Duration::from_secs_f64((args.slo_p99_ms / 2.0).max(10.0) / 1000.0);
    let mut noise_rng = SmallRng::seed_from_u64(args.seed);
    let noise: Bytes = (0..args.max_value_bytes)
        .map(|_| noise_rng.random::<u8>())
        .collect::<Vec<u8>>()
        .into();

    let mut twins = Vec::new();
    for (t, arg) in args.twins.iter().enumerate() {
        let fill = ChurnConfig {
            capacity_bytes: args.capacity_bytes,
            min_value_bytes: args.min_value_bytes,
            max_value_bytes: args.max_value_bytes,
            connections: 32,
            seed: args.seed,
            ..ChurnConfig::default()
        };
        // Without a fill, the key space is what a fill at this capacity
        // would have stored: capacity over the mean accounted entry.
        let mean_entry = (args.min_value_bytes + args.max_value_bytes) as f64 / 2.0 + 100.0;
        let stored = if args.no_fill {
            (args.capacity_bytes as f64 * 1.1 / mean_entry) as u64
        } else {
            let began = std::time::Instant::now();
            let filled = churn::fill(arg.addr, &fill)
                .await
                .with_context(|| format!("fill {} at {}", arg.name, arg.addr))?;
            let rss = parallax_process::procstat::read(arg.pid).map_or(0, |u| u.rss_bytes);
            eprintln!(
                "{}: filled {} PUTs, {} accounted bytes in {:.0} s, RSS {} MiB, errors {:?}",
                arg.name,
                filled.puts,
                filled.accounted_bytes,
                began.elapsed().as_secs_f64(),
                rss >> 20,
                filled.errors
            );
            filled.puts
        };
        let key_space = ((stored.max(1) as f64) * args.key_space_factor).ceil() as u64;
        let senders = (0..args.connections)
            .map(|i| Mixed {
                connection: Connection::new(arg.addr, Duration::from_secs(10)),
                rng: SmallRng::seed_from_u64(
                    args.seed
                        .wrapping_add(1 << 40)
                        .wrapping_add((t * 100_000 + i) as u64),
                ),
                noise: noise.clone(),
                min_value: args.min_value_bytes,
                max_value: args.max_value_bytes,
                key_space,
                get_share: args.get_share,
                start: Instant::now(),
                schedule: Schedule {
                    rate_per_sec: 1.0,
                    ramp: Duration::ZERO,
                    duration: Duration::ZERO,
                    max_requests: 0,
                },
                late_after,
                records: Vec::new(),
            })
            .collect();
        twins.push(Twin {
            arg: arg.clone(),
            senders,
        });
    }

    let steps_path = args.out.join("steps.csv");
    let mut steps_csv = std::fs::File::create(&steps_path)
        .with_context(|| format!("create {}", steps_path.display()))?;
    writeln!(steps_csv, "{STEPS_HEADER}")?;

    // Ladder: per twin, whether it is still probed and its capacity so far.
    let mut capacity: Vec<Option<f64>> = vec![None; twins.len()];
    let mut climbing = vec![true; twins.len()];
    let mut capacity_open = vec![true; twins.len()];
    for (rung, &rate) in args.ladder.iter().enumerate() {
        let mut order: Vec<usize> = (0..twins.len()).collect();
        if rung % 2 == 1 {
            order.reverse();
        }
        let back: Vec<usize> = order.iter().rev().copied().collect();
        order.extend(back);
        let mut held = vec![(0usize, 0usize); twins.len()];
        for (probe, &t) in order.iter().enumerate() {
            if !climbing[t] {
                continue;
            }
            let twin = &mut twins[t];
            let (started, _, figures, cpu) =
                step(twin, rate, args.warmup_secs, args.probe_secs, late_after).await;
            let ok = (figures.p99_us as f64) < args.slo_p99_ms * 1000.0
                && figures.bad_pct() < args.max_bad_pct;
            held[t].0 += usize::from(ok);
            held[t].1 += 1;
            let row = StepRow {
                phase: "ladder",
                twin: &twin.arg.name,
                rung,
                probe,
                rate,
                started,
                measured_from_s: args.warmup_secs,
                secs: args.probe_secs,
                step: &figures,
                held: ok,
                cpu_s: cpu,
                rss_end: parallax_process::procstat::read(twin.arg.pid).map_or(0, |u| u.rss_bytes),
                last_gc: last_gc_unix_s(twin.arg.addr).await,
            };
            writeln!(steps_csv, "{}", row.csv())?;
            eprintln!(
                "ladder {rate:.0}/s {}: p99 {:.1} ms, bad {:.2} % ({} late, {} failed, {} not sent) -> {}  [load {}]",
                twin.arg.name,
                figures.p99_us as f64 / 1000.0,
                figures.bad_pct(),
                figures.late,
                figures.errors,
                figures.not_sent,
                if ok { "held" } else { "FAILED" },
                parallax_process::procstat::load_average()
            );
        }
        for t in 0..twins.len() {
            let (ok, of) = held[t];
            if of == 0 {
                continue;
            }
            // Capacity is the highest rung below the first where any probe
            // failed; the climb goes on while one still holds, so that each
            // probe's own ladder (the summary's A/A in time) is complete.
            if ok == of && capacity_open[t] {
                capacity[t] = Some(rate);
            } else {
                capacity_open[t] = false;
            }
            if ok == 0 {
                climbing[t] = false;
            }
        }
    }
    for (t, twin) in twins.iter().enumerate() {
        eprintln!(
            "capacity {}: {}",
            twin.arg.name,
            capacity[t].map_or("none held".to_owned(), |c| format!("{c:.0}/s"))
        );
    }

    if args.tail_secs > 0.0 {
        let rate = match args.tail_rate {
            Some(r) => r,
            None => {
                // A twin that held no rung has a capacity below the lowest
                // one, so the lowest capacity is only known when all held.
                let lowest = capacity
                    .iter()
                    .try_fold(f64::INFINITY, |low, c| c.map(|c| low.min(c)));
                if let Some(lowest) = lowest.filter(|l| l.is_finite()) {
                    lowest * args.tail_share
                } else {
                    // A busy machine can fail the lowest rung; the tail is
                    // still worth measuring, at a share of that rung.
                    let Some(&first) = args.ladder.first() else {
                        bail!("no ladder and no --tail-rate: give one of them");
                    };
                    eprintln!(
                        "a twin held no rung; the tail runs at {} of the lowest",
                        args.tail_share
                    );
                    first * args.tail_share
                }
            }
        };
        for twin in &mut twins {
            let (started, records, figures, cpu) =
                step(twin, rate, 0.0, args.tail_secs, late_after).await;
            let last_gc = last_gc_unix_s(twin.arg.addr).await;
            let row = StepRow {
                phase: "tail",
                twin: &twin.arg.name,
                rung: 0,
                probe: 0,
                rate,
                started,
                measured_from_s: 0.0,
                secs: args.tail_secs,
                step: &figures,
                held: (figures.p99_us as f64) < args.slo_p99_ms * 1000.0
                    && figures.bad_pct() < args.max_bad_pct,
                cpu_s: cpu,
                rss_end: parallax_process::procstat::read(twin.arg.pid).map_or(0, |u| u.rss_bytes),
                last_gc,
            };
            writeln!(steps_csv, "{}", row.csv())?;
            write_tail(
                &args.out.join(format!("tail-{}.csv", twin.arg.name)),
                &records,
            )?;
            eprintln!(
                "tail {rate:.0}/s {}: {} requests, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms, bad {:.2} %  [load {}]",
                twin.arg.name,
                figures.requests,
                figures.p99_us as f64 / 1000.0,
                figures.p999_us as f64 / 1000.0,
                figures.max_us as f64 / 1000.0,
                figures.bad_pct(),
                parallax_process::procstat::load_average()
            );
        }
    }
    Ok(())
}
