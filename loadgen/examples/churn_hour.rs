//! The `churn` scenario over a long run, one minute at a time, against a
//! session cache that is already running (`scripts/cache-churn-hour.sh`
//! starts both twins and one of these per twin, so they churn at the same
//! time).
//!
//! `parallax bench cache-churn` samples memory twice (after the fill, after
//! the churn) and reports one latency histogram for the whole churn; over an
//! hour, what matters is the shape in time: whether RSS keeps growing and
//! in which minutes the tail rises (a GC cycle, an allocator trimming).
//! So this fills once, then runs [`churn::run`] minute after minute and
//! prints one CSV line per minute: latency percentiles from the slot's time,
//! late slots, errors, and the server's RSS and `cache_bytes` at the
//! minute's end, and its CPU time so far. Each minute draws keys and sizes from its own seed.
//!
//! ```text
//! cargo run --release -p parallax-loadgen --example churn_hour -- \
//!     --target 127.0.0.1:18081 --pid 1234 --capacity-bytes 4294967296 \
//!     --rate 1500 --minutes 60 > go.csv
//! ```

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;

use parallax_loadgen::churn::{self, ChurnConfig, Filled};

#[derive(Debug, Parser)]
struct Args {
    /// The running cache's address.
    #[arg(long)]
    target: SocketAddr,
    /// Its process id, for RSS from `/proc/<pid>/statm`.
    #[arg(long)]
    pid: u32,
    /// The server's `--capacity-bytes`; the fill writes 1.1 × this.
    #[arg(long, default_value_t = 4 << 30)]
    capacity_bytes: u64,
    /// Churn PUTs per second.
    #[arg(long, default_value_t = 1500.0)]
    rate: f64,
    /// Measured minutes after the fill.
    #[arg(long, default_value_t = 60)]
    minutes: u64,
    /// Churn keys are uniform over this many times the keys the fill stored.
    #[arg(long, default_value_t = 4.0)]
    key_space_factor: f64,
    #[arg(long, default_value_t = 64)]
    min_value_bytes: usize,
    #[arg(long, default_value_t = 65536)]
    max_value_bytes: usize,
    /// Keep-alive connections (one sender each).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds per measured interval (one CSV line each).
    #[arg(long, default_value_t = 60)]
    interval_secs: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// CPU time of `pid` (user + system) in ms: `/proc/<pid>/stat` fields 14
/// and 15, in clock ticks of 10 ms (USER_HZ is 100 on Linux).
fn cpu_ms(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; count after its ')'.
    let rest = stat.rsplit_once(')').context("stat has no ')'")?.1;
    let field = |i: usize| -> anyhow::Result<u64> {
        Ok(rest
            .split_whitespace()
            .nth(i)
            .context("short stat")?
            .parse()?)
    };
    // After ')': state is field 3, so utime (14) is index 11, stime index 12.
    Ok((field(11)? + field(12)?) * 10)
}

/// Resident set size of `pid` in bytes (statm's second field is pages).
fn rss_bytes(pid: u32) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm"))?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or("statm has no second field")?
        .parse()?;
    // 4 KiB pages: x86-64 and this harness's machines.
    Ok(pages * 4096)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = ChurnConfig {
        capacity_bytes: args.capacity_bytes,
        ops: (args.rate * args.interval_secs as f64).round() as u64,
        rate_per_sec: args.rate,
        key_space_factor: args.key_space_factor,
        min_value_bytes: args.min_value_bytes,
        max_value_bytes: args.max_value_bytes,
        connections: args.connections,
        seed: args.seed,
        ..ChurnConfig::default()
    };
    let started = Instant::now();
    let filled = churn::fill(args.target, &base)
        .await
        .context("fill (is the cache at --target running?)")?;
    eprintln!(
        "filled: {} PUTs, {} accounted bytes, {:.0} s, fill errors {:?}",
        filled.puts,
        filled.accounted_bytes,
        started.elapsed().as_secs_f64(),
        filled.errors
    );
    println!(
        "minute,elapsed_s,requests,achieved_per_s,late,not_sent,errors,\
         p50_us,p90_us,p99_us,p999_us,max_us,rss_start,rss_end,cache_bytes,cache_entries,cpu_ms"
    );
    let probe = || rss_bytes(args.pid);
    for minute in 0..args.minutes {
        let config = ChurnConfig {
            // Its own keys and sizes each minute (the fill used seed + i).
            seed: args.seed.wrapping_add(1_000_003 * (minute + 1)),
            ..base.clone()
        };
        let this = Filled {
            errors: Default::default(),
            ..filled.clone()
        };
        let r = churn::run(args.target, &config, this, &probe)
            .await
            .with_context(|| format!("churn minute {minute}"))?;
        let l = &r.load.latency;
        println!(
            "{minute},{:.1},{},{:.1},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            started.elapsed().as_secs_f64(),
            r.load.requests,
            r.load.achieved_rate_per_sec,
            r.load.late_slots,
            r.load.not_sent,
            r.errors.status_total() + r.errors.transport_total(),
            l.p50_us,
            l.p90_us,
            l.p99_us,
            l.p999_us,
            l.max_us,
            r.start.rss_bytes,
            r.end.rss_bytes,
            r.end.cache_bytes,
            r.end.cache_entries,
            cpu_ms(args.pid)?,
        );
    }
    Ok(())
}
