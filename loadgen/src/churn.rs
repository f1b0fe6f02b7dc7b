//! The `churn` scenario: what a full cache costs in RAM while eviction runs
//! all the time.
//!
//! The cache accounts `len(id) + len(value) + len(content type) + 64` bytes
//! per entry (docs/contract-cache.md); the process holds more — allocator
//! slack, fragmentation, a garbage collector's headroom. Values of uniformly
//! random sizes (64 B – 64 KiB by default, seeded) are the worst case for
//! fragmentation, so this fills the cache with them and then PUTs random
//! keys from a key space several times what fits, so nearly every PUT
//! evicts. The server's RSS (from `/proc`, through the caller's probe) and
//! its `cache_bytes` / `cache_entries` gauges (from `/metrics`) are sampled
//! right after the fill and right after the churn; RSS per accounted byte
//! and RSS growth over the churn are what to compare.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::cache::{classify, count_error, CacheOutcome, Op};
use crate::http::Connection;
use crate::pacing::{self, Plan, Schedule};
use crate::result::{ChurnResult, Errors, Load, MemorySample};
use crate::{positive, Error};

/// The content type the server stores when a PUT names none (we send none).
const DEFAULT_CONTENT_TYPE_LEN: u64 = "application/octet-stream".len() as u64;
/// The contract's documented per-entry overhead.
const ENTRY_OVERHEAD: u64 = 64;

/// The scenario's knobs; `parallax bench cache-churn` maps its flags onto these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChurnConfig {
    /// The server's `--capacity-bytes` (the fill target is derived from it).
    pub capacity_bytes: u64,
    /// Fill until the accounted bytes written reach this multiple of the
    /// capacity; above 1 so every shard is full despite uneven hashing.
    pub fill_factor: f64,
    /// Churn PUTs after the fill.
    pub ops: u64,
    /// Churn PUTs per second.
    pub rate_per_sec: f64,
    /// Churn keys are uniform over this many times the number of entries
    /// the fill stored, so most PUTs insert a new key and evict.
    pub key_space_factor: f64,
    /// Value sizes are uniform in `min_value_bytes..=max_value_bytes`.
    pub min_value_bytes: usize,
    pub max_value_bytes: usize,
    /// Keep-alive connections, one sender each.
    pub connections: usize,
    /// A slot taken this much after its time counts as late.
    pub late_after_ms: f64,
    /// A slot is released to a sender this much before its time (room
    /// for the sender's wake-up; [`pacing::EARLY_BY`] by default).
    pub early_by_ms: f64,
    /// A request without a complete answer after this long is a timeout.
    pub request_timeout_ms: u64,
    /// Seeds value sizes and keys.
    pub seed: u64,
}

impl Default for ChurnConfig {
    fn default() -> Self {
        Self {
            capacity_bytes: 1 << 30,
            fill_factor: 1.1,
            ops: 200_000,
            rate_per_sec: 5_000.0,
            key_space_factor: 4.0,
            min_value_bytes: 64,
            max_value_bytes: 64 * 1024,
            connections: 32,
            late_after_ms: 1.0,
            early_by_ms: pacing::EARLY_BY.as_secs_f64() * 1000.0,
            request_timeout_ms: 10_000,
            seed: 1,
        }
    }
}

impl ChurnConfig {
    /// Checks every setting is in range; the scenario's phases call it too.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: &str| Err(Error::Config(what.to_owned()));
        if self.capacity_bytes == 0 || !positive(self.fill_factor) {
            return bad("capacity and fill factor must be above 0");
        }
        if self.ops == 0 || !positive(self.rate_per_sec) {
            return bad("ops and rate must be above 0");
        }
        if !(self.key_space_factor.is_finite() && self.key_space_factor >= 1.0) {
            return bad("the key space factor must be at least 1");
        }
        if self.min_value_bytes > self.max_value_bytes || self.max_value_bytes > 1_048_576 {
            return bad("value sizes must be min <= max <= 1048576");
        }
        if self.connections == 0 {
            return bad("connections must be at least 1");
        }
        Ok(())
    }

    fn plan(&self) -> Plan {
        let ms = |v: f64| Duration::from_secs_f64(v / 1000.0);
        // Slot ops-1 is due at (ops-1)/rate, inside ops/rate.
        let duration = Duration::from_secs_f64(self.ops as f64 / self.rate_per_sec);
        Plan {
            schedule: Schedule {
                rate_per_sec: self.rate_per_sec,
                ramp: Duration::ZERO,
                duration,
                max_requests: self.ops,
            },
            warmup: Duration::ZERO,
            late_after: ms(self.late_after_ms),
            early_by: ms(self.early_by_ms),
            overrun: duration / 4 + Duration::from_secs(5),
        }
    }
}

/// Reads the server's resident set size; the caller knows the process.
pub type RssProbe<'a> = &'a dyn Fn() -> Result<u64, Box<dyn std::error::Error + Send + Sync>>;

/// Random value sizes and the bytes to slice them from.
#[derive(Clone)]
struct Values {
    /// `max_value_bytes` of seeded noise; a value is a prefix (no copy).
    noise: Bytes,
    min: usize,
    max: usize,
}

impl Values {
    fn new(config: &ChurnConfig) -> Self {
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let noise: Vec<u8> = (0..config.max_value_bytes).map(|_| rng.random()).collect();
        Self {
            noise: Bytes::from(noise),
            min: config.min_value_bytes,
            max: config.max_value_bytes,
        }
    }

    fn draw(&self, rng: &mut SmallRng) -> Bytes {
        self.noise.slice(..rng.random_range(self.min..=self.max))
    }
}

/// `/v1/sessions/c-<n>` and the bytes the server accounts for it.
fn path_and_cost(n: u64, value_len: usize) -> (String, u64) {
    let path = format!("/v1/sessions/c-{n}");
    let id_len = (path.len() - "/v1/sessions/".len()) as u64;
    let cost = id_len + value_len as u64 + DEFAULT_CONTENT_TYPE_LEN + ENTRY_OVERHEAD;
    (path, cost)
}

struct ChurnSender {
    connection: Connection,
    rng: SmallRng,
    values: Values,
    key_space: u64,
}

impl pacing::Sender for ChurnSender {
    type Outcome = CacheOutcome;

    async fn send(&mut self, _n: u64) -> CacheOutcome {
        let key = self.rng.random_range(0..self.key_space);
        let value = self.values.draw(&mut self.rng);
        let (path, _) = path_and_cost(key, value.len());
        let answer = self.connection.send(Method::PUT, &path, value).await;
        classify(Op::Put, answer.map(|a| a.status))
    }
}

/// The fill phase's outcome, carried into [`run`].
#[derive(Debug, Clone, Default)]
pub struct Filled {
    /// PUTs of fresh keys stored.
    pub puts: u64,
    /// Accounted bytes those PUTs wrote (before evictions).
    pub accounted_bytes: u64,
    /// Fill PUTs that failed.
    pub errors: Errors,
}

/// PUTs fresh keys `c-0, c-1, …` with closed-loop workers until the
/// accounted bytes written reach `fill_factor × capacity`. Unmeasured; call
/// [`run`] next.
pub async fn fill(addr: SocketAddr, config: &ChurnConfig) -> Result<Filled, Error> {
    config.validate()?;
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let values = Values::new(config);
    let target = (config.capacity_bytes as f64 * config.fill_factor) as u64;
    let next = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let stored = Arc::new(AtomicU64::new(0));
    // Failures are rare and merged once per worker: a mutex is simplest.
    let failed = Arc::new(Mutex::new(Errors::default()));
    let workers: Vec<_> = (0..config.connections)
        .map(|i| {
            let (next, written, stored, failed) = (
                next.clone(),
                written.clone(),
                stored.clone(),
                failed.clone(),
            );
            let values = values.clone();
            let mut rng = SmallRng::seed_from_u64(config.seed.wrapping_add(i as u64));
            tokio::spawn(async move {
                let mut connection = Connection::new(addr, timeout);
                let mut mine = Errors::default();
                // A few PUTs past the target are harmless (each worker may
                // have one in flight when it is reached).
                while written.load(Ordering::Relaxed) < target {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let value = values.draw(&mut rng);
                    let (path, cost) = path_and_cost(n, value.len());
                    let answer = connection.send(Method::PUT, &path, value).await;
                    match classify(Op::Put, answer.map(|a| a.status)) {
                        CacheOutcome::Stored => {
                            stored.fetch_add(1, Ordering::Relaxed);
                            written.fetch_add(cost, Ordering::Relaxed);
                        }
                        CacheOutcome::Status(op, s) => mine.count_status(op.method(), s, 1),
                        CacheOutcome::Transport(e) => mine.count_transport(e, 1),
                        CacheOutcome::Hit | CacheOutcome::Miss => unreachable!("a PUT"),
                    }
                    // A server that refuses everything would spin this loop.
                    if mine.status_total() + mine.transport_total() > 100 {
                        break;
                    }
                }
                failed.lock().expect("not poisoned").merge(&mine);
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a fill worker panicked");
    }
    let errors = failed.lock().expect("not poisoned").clone();
    Ok(Filled {
        puts: stored.load(Ordering::Relaxed),
        accounted_bytes: written.load(Ordering::Relaxed),
        errors,
    })
}

/// The measured phase, after [`fill`]: samples memory, churns, samples
/// again. `rss` reads the server's resident set size; the caller samples
/// its CPU around this call.
pub async fn run(
    addr: SocketAddr,
    config: &ChurnConfig,
    filled: Filled,
    rss: RssProbe<'_>,
) -> Result<ChurnResult, Error> {
    config.validate()?;
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let values = Values::new(config);
    let mut metrics = Connection::new(addr, timeout);
    let start = sample(&mut metrics, rss).await?;
    let key_space = ((filled.puts.max(1) as f64) * config.key_space_factor).ceil() as u64;
    let senders = (0..config.connections)
        .map(|i| ChurnSender {
            connection: Connection::new(addr, timeout),
            // Apart from the fill's seeds (seed + i there).
            rng: SmallRng::seed_from_u64(config.seed.wrapping_add(1 << 32).wrapping_add(i as u64)),
            values: values.clone(),
            key_space,
        })
        .collect();
    let (report, _) = pacing::run(config.plan(), senders).await;
    let end = sample(&mut metrics, rss).await?;

    let load = Load::from_report(config.rate_per_sec, &report);
    let mut errors = filled.errors;
    let mut stored = 0;
    for (outcome, count) in report.outcomes {
        match outcome {
            CacheOutcome::Stored => stored += count,
            // A PUT is never a hit or a miss.
            _ => count_error(&mut errors, outcome, count),
        }
    }
    Ok(ChurnResult {
        fill_puts: filled.puts,
        fill_accounted_bytes: filled.accounted_bytes,
        load,
        stored,
        start,
        end,
        rss_growth_pct: if start.rss_bytes > 0 {
            (end.rss_bytes as f64 - start.rss_bytes as f64) / start.rss_bytes as f64 * 100.0
        } else {
            0.0
        },
        errors,
    })
}

/// The server's RSS and its own accounting, read back to back.
async fn sample(metrics: &mut Connection, rss: RssProbe<'_>) -> Result<MemorySample, Error> {
    let (status, body) = metrics
        .get_body("/metrics")
        .await
        .map_err(|e| Error::Metrics(format!("GET /metrics: {e}")))?;
    if status != StatusCode::OK {
        return Err(Error::Metrics(format!("GET /metrics answered {status}")));
    }
    let text = std::str::from_utf8(&body).map_err(|e| Error::Metrics(e.to_string()))?;
    // The one Prometheus parser (`parallax_process::prom`); an unlabelled
    // gauge is the sum of its one series.
    let samples = parallax_process::prom::parse(text);
    let gauge = |name: &str| {
        parallax_process::prom::sum(&samples, name, &[])
            .ok_or_else(|| Error::Metrics(format!("no `{name}` in /metrics")))
    };
    let (cache_bytes, cache_entries) = (gauge("cache_bytes")?, gauge("cache_entries")?);
    let rss_bytes = rss().map_err(|e| Error::Probe(e.to_string()))?;
    Ok(MemorySample::new(
        rss_bytes,
        cache_bytes as u64,
        cache_entries as u64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_costs_id_value_content_type_and_overhead() {
        let (path, cost) = path_and_cost(7, 1000);
        assert_eq!(path, "/v1/sessions/c-7");
        assert_eq!(cost, 3 + 1000 + 24 + 64);
    }

    #[test]
    fn value_sizes_stay_within_bounds() {
        let config = ChurnConfig {
            max_value_bytes: 4096,
            ..ChurnConfig::default()
        };
        let values = Values::new(&config);
        let mut rng = SmallRng::seed_from_u64(3);
        let sizes: Vec<usize> = (0..10_000).map(|_| values.draw(&mut rng).len()).collect();
        assert!(sizes.iter().all(|s| (64..=4096).contains(s)));
        assert!(sizes.iter().any(|&s| s < 128), "the low end is drawn");
        assert!(sizes.iter().any(|&s| s > 4032), "the high end is drawn");
    }
}
