//! The `cache` scenario: a read-mostly, skewed session-cache workload.
//!
//! Real session traffic is skewed — a few sessions are hot — so keys
//! `s-<n>` are drawn from a Zipf distribution over `keys` ranks (`s-0` the
//! hottest). Each request is a GET with probability `read_ratio`, else a PUT
//! of a `value_size`-byte value. Every key is PUT once beforehand (the
//! preload, closed-loop, unmeasured) so reads mostly hit and the cache is at
//! its working size before the clock starts; GETs that still miss (a key
//! evicted or expired) are counted as misses, not errors.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use rand::rngs::SmallRng;
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::{Deserialize, Serialize};

use crate::http::{Connection, TransportError};
use crate::pacing::{self, Plan, Schedule};
use crate::result::{CacheResult, Errors, Load};
use crate::{positive, Error};

/// The scenario's knobs; `parallax bench cache` maps its flags onto these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// Requests per second once ramped.
    pub rate_per_sec: f64,
    /// Measured time, after the warm-up.
    pub duration_secs: f64,
    /// Sent at full schedule but not measured.
    pub warmup_secs: f64,
    /// Linear ramp from 0 to `rate_per_sec` at the start (inside the warm-up
    /// when shorter than it).
    pub ramp_secs: f64,
    /// Share of requests that are GETs; the rest are PUTs.
    pub read_ratio: f64,
    /// Size of the key space: keys `s-0` … `s-<keys-1>`.
    pub keys: u64,
    /// Zipf exponent over key ranks (0: uniform; 1: classic Zipf).
    pub zipf_exponent: f64,
    /// Bytes in each PUT's value.
    pub value_size: usize,
    /// Keep-alive connections, one sender each: the most requests in flight.
    pub connections: usize,
    /// A slot taken this much after its time counts as late.
    pub late_after_ms: f64,
    /// A slot is released to a sender this much before its time (room
    /// for the sender's wake-up; [`pacing::EARLY_BY`] by default).
    pub early_by_ms: f64,
    /// A request without a complete answer after this long is a timeout.
    pub request_timeout_ms: u64,
    /// Seeds the key and operation choices.
    pub seed: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            rate_per_sec: 50_000.0,
            duration_secs: 30.0,
            warmup_secs: 5.0,
            ramp_secs: 0.0,
            read_ratio: 0.9,
            keys: 100_000,
            zipf_exponent: 1.0,
            value_size: 1024,
            connections: 128,
            late_after_ms: 1.0,
            early_by_ms: pacing::EARLY_BY.as_secs_f64() * 1000.0,
            request_timeout_ms: 10_000,
            seed: 1,
        }
    }
}

impl CacheConfig {
    /// Checks every setting is in range; the scenario's phases call it too.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: &str| Err(Error::Config(what.to_owned()));
        if !positive(self.rate_per_sec) {
            return bad("rate must be above 0");
        }
        if !positive(self.duration_secs) || self.warmup_secs < 0.0 || self.ramp_secs < 0.0 {
            return bad("duration must be above 0, warm-up and ramp at least 0");
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            return bad("read ratio must be within 0..=1");
        }
        if self.connections == 0 {
            return bad("connections must be at least 1");
        }
        if self.value_size > 1_048_576 {
            return bad("value size must be at most 1048576 bytes (the contract's limit)");
        }
        KeyGen::new(self.keys, self.zipf_exponent).map(|_| ())
    }

    /// The value every PUT sends.
    fn value(&self) -> Bytes {
        Bytes::from(vec![b'v'; self.value_size])
    }

    fn plan(&self) -> Plan {
        let ms = |v: f64| Duration::from_secs_f64(v / 1000.0);
        let duration = Duration::from_secs_f64(self.warmup_secs + self.duration_secs);
        Plan {
            schedule: Schedule {
                rate_per_sec: self.rate_per_sec,
                ramp: Duration::from_secs_f64(self.ramp_secs),
                duration,
                max_requests: u64::MAX,
            },
            warmup: Duration::from_secs_f64(self.warmup_secs),
            late_after: ms(self.late_after_ms),
            early_by: ms(self.early_by_ms),
            // A slow backend may finish late, but the run ends regardless.
            overrun: duration / 4 + Duration::from_secs(5),
        }
    }
}

/// Draws key indices `0..keys` from a Zipf distribution over ranks: index 0
/// is the most frequent.
#[derive(Debug, Clone, Copy)]
pub struct KeyGen {
    zipf: Zipf<f64>,
    keys: u64,
}

impl KeyGen {
    pub fn new(keys: u64, exponent: f64) -> Result<Self, Error> {
        if keys == 0 {
            return Err(Error::Config(
                "the key space must hold at least 1 key".into(),
            ));
        }
        let zipf = Zipf::new(keys as f64, exponent)
            .map_err(|e| Error::Config(format!("zipf exponent {exponent}: {e}")))?;
        Ok(Self { zipf, keys })
    }

    /// A key index in `0..keys`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        // Zipf yields ranks 1..=keys as floats; clamp against rounding.
        let rank = self.zipf.sample(rng) as u64;
        rank.clamp(1, self.keys) - 1
    }
}

/// The path of key index `n`: `/v1/sessions/s-<n>`.
fn path(n: u64) -> String {
    format!("/v1/sessions/s-{n}")
}

/// GET or PUT: what [`CacheOutcome`] and error keys name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Get,
    Put,
}

impl Op {
    pub fn method(self) -> &'static str {
        match self {
            Op::Get => "GET",
            Op::Put => "PUT",
        }
    }
}

/// What one cache request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CacheOutcome {
    Hit,
    Miss,
    Stored,
    Status(Op, u16),
    Transport(TransportError),
}

/// Classifies an answer: 200 on GET is a hit, 404 a miss, 204 on PUT stored.
pub fn classify(op: Op, answer: Result<StatusCode, TransportError>) -> CacheOutcome {
    match (op, answer) {
        (_, Err(e)) => CacheOutcome::Transport(e),
        (Op::Get, Ok(StatusCode::OK)) => CacheOutcome::Hit,
        (Op::Get, Ok(StatusCode::NOT_FOUND)) => CacheOutcome::Miss,
        (Op::Put, Ok(StatusCode::NO_CONTENT)) => CacheOutcome::Stored,
        (op, Ok(status)) => CacheOutcome::Status(op, status.as_u16()),
    }
}

/// One connection's sender: its own RNG, the shared key distribution and a
/// shared value (cloning `Bytes` is a reference-count bump).
struct CacheSender {
    connection: Connection,
    rng: SmallRng,
    keys: KeyGen,
    read_ratio: f64,
    value: Bytes,
}

impl pacing::Sender for CacheSender {
    type Outcome = CacheOutcome;

    async fn send(&mut self, _n: u64) -> CacheOutcome {
        let k = self.keys.sample(&mut self.rng);
        let (op, method, body) = if self.rng.random_bool(self.read_ratio) {
            (Op::Get, Method::GET, Bytes::new())
        } else {
            (Op::Put, Method::PUT, self.value.clone())
        };
        let answer = self.connection.send(method, &path(k), body).await;
        classify(op, answer.map(|a| a.status))
    }
}

/// The preload phase's outcome, carried into [`run`]'s result.
#[derive(Debug, Clone, Default)]
pub struct Preloaded {
    /// Keys stored.
    pub puts: u64,
    /// Preload PUTs that failed.
    pub errors: Errors,
}

/// Adds `outcome` to `errors` if it is one (hits, misses, stores are not).
pub(crate) fn count_error(errors: &mut Errors, outcome: CacheOutcome, count: u64) {
    match outcome {
        CacheOutcome::Status(op, status) => errors.count_status(op.method(), status, count),
        CacheOutcome::Transport(e) => errors.count_transport(e, count),
        CacheOutcome::Hit | CacheOutcome::Miss | CacheOutcome::Stored => {}
    }
}

/// PUTs every key once, as fast as `connections` closed-loop workers go, so
/// that the paced run's reads mostly hit. Unmeasured; call [`run`] next.
pub async fn preload(addr: SocketAddr, config: &CacheConfig) -> Result<Preloaded, Error> {
    config.validate()?;
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let value = config.value();
    let next = Arc::new(AtomicU64::new(0));
    let stored = Arc::new(AtomicU64::new(0));
    // Failures are rare and merged once per worker: a mutex is simplest.
    let failed = Arc::new(Mutex::new(Errors::default()));
    let workers: Vec<_> = (0..config.connections)
        .map(|_| {
            let (next, stored, failed) = (next.clone(), stored.clone(), failed.clone());
            let (value, keys) = (value.clone(), config.keys);
            tokio::spawn(async move {
                let mut connection = Connection::new(addr, timeout);
                let mut mine = Errors::default();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= keys {
                        break;
                    }
                    let answer = connection.send(Method::PUT, &path(k), value.clone()).await;
                    match classify(Op::Put, answer.map(|a| a.status)) {
                        CacheOutcome::Stored => {
                            stored.fetch_add(1, Ordering::Relaxed);
                        }
                        CacheOutcome::Transport(e) => mine.count_transport(e, 1),
                        CacheOutcome::Status(op, s) => mine.count_status(op.method(), s, 1),
                        CacheOutcome::Hit | CacheOutcome::Miss => unreachable!("a PUT"),
                    }
                }
                failed.lock().expect("not poisoned").merge(&mine);
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a preload worker panicked");
    }
    let errors = failed.lock().expect("not poisoned").clone();
    Ok(Preloaded {
        puts: stored.load(Ordering::Relaxed),
        errors,
    })
}

/// The measured phase: the paced run against the cache at `addr`, after
/// [`preload`]. The caller samples the server's CPU around this call.
pub async fn run(
    addr: SocketAddr,
    config: &CacheConfig,
    preloaded: Preloaded,
) -> Result<CacheResult, Error> {
    config.validate()?;
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let value = config.value();
    let keys = KeyGen::new(config.keys, config.zipf_exponent)?;
    let senders = (0..config.connections)
        .map(|i| CacheSender {
            connection: Connection::new(addr, timeout),
            rng: SmallRng::seed_from_u64(config.seed.wrapping_add(i as u64)),
            keys,
            read_ratio: config.read_ratio,
            value: value.clone(),
        })
        .collect();
    let (report, _) = pacing::run(config.plan(), senders).await;

    let mut result = CacheResult {
        preload_puts: preloaded.puts,
        load: Load::from_report(config.rate_per_sec, &report),
        errors: preloaded.errors,
        ..CacheResult::default()
    };
    for (outcome, count) in report.outcomes {
        match outcome {
            CacheOutcome::Hit => result.hits += count,
            CacheOutcome::Miss => result.misses += count,
            CacheOutcome::Stored => result.stored += count,
            CacheOutcome::Status(..) | CacheOutcome::Transport(_) => {
                count_error(&mut result.errors, outcome, count)
            }
        }
    }
    for (outcome, count) in report.warmup_outcomes {
        count_error(&mut result.errors, outcome, count);
    }
    Ok(result)
}

/// The same read/write mix for [`crate::open`] (goose). Every goose user
/// shares one workload, so the key and the operation are derived from the
/// slot number alone: no locks, and a run is reproducible from its seed.
pub struct CacheWorkload {
    keys: KeyGen,
    read_ratio: f64,
    value: Bytes,
    seed: u64,
}

impl CacheWorkload {
    pub fn new(config: &CacheConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self {
            keys: KeyGen::new(config.keys, config.zipf_exponent)?,
            read_ratio: config.read_ratio,
            value: config.value(),
            seed: config.seed,
        })
    }

    /// The operation and key index of slot `n`.
    pub fn pick(&self, n: u64) -> (Op, u64) {
        let mut rng = SmallRng::seed_from_u64(self.seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let k = self.keys.sample(&mut rng);
        let op = if rng.random_bool(self.read_ratio) {
            Op::Get
        } else {
            Op::Put
        };
        (op, k)
    }
}

impl crate::open::Workload for CacheWorkload {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn request(&self, n: u64) -> crate::open::Request {
        use goose::prelude::GooseMethod;
        let (op, k) = self.pick(n);
        let (method, body, content_type) = match op {
            Op::Get => (GooseMethod::Get, None, None),
            Op::Put => (
                GooseMethod::Put,
                Some(self.value.clone()),
                Some("application/octet-stream"),
            ),
        };
        crate::open::Request {
            method,
            path: path(k),
            body,
            content_type,
            units: 1,
            headers: Vec::new(),
        }
    }

    /// Hits, misses and stores are all answers the contract allows.
    fn judge(&self, n: u64, status: u16, _body: &[u8]) -> crate::open::Verdict {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match classify(self.pick(n).0, Ok(status)) {
            CacheOutcome::Hit | CacheOutcome::Miss | CacheOutcome::Stored => {
                crate::open::Verdict::Ok
            }
            _ => crate::open::Verdict::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(keys: u64, exponent: f64, n: usize) -> Vec<u64> {
        let generator = KeyGen::new(keys, exponent).unwrap();
        let mut rng = SmallRng::seed_from_u64(7);
        (0..n).map(|_| generator.sample(&mut rng)).collect()
    }

    #[test]
    fn zipf_keys_stay_within_the_key_space() {
        for exponent in [0.0, 0.5, 1.0, 1.5, 3.0] {
            let drawn = samples(10, exponent, 20_000);
            assert!(drawn.iter().all(|&k| k < 10), "exponent {exponent}");
        }
    }

    #[test]
    fn zipf_keys_cover_both_ends_of_the_key_space() {
        let drawn = samples(10, 1.0, 20_000);
        assert!(drawn.contains(&0));
        assert!(drawn.contains(&9));
    }

    #[test]
    fn zipf_rank_zero_is_the_hottest_key() {
        let drawn = samples(1000, 1.0, 50_000);
        let count = |k| drawn.iter().filter(|&&d| d == k).count();
        // P(rank 1) / P(rank 2) = 2 for exponent 1.
        let (first, second) = (count(0), count(1));
        assert!(first > second * 3 / 2, "{first} vs {second}");
        assert!(second > count(100) * 10);
    }

    #[test]
    fn a_single_key_space_always_yields_key_zero() {
        assert!(samples(1, 1.0, 1000).iter().all(|&k| k == 0));
    }

    #[test]
    fn an_empty_key_space_or_negative_exponent_is_refused() {
        assert!(matches!(KeyGen::new(0, 1.0), Err(Error::Config(_))));
        assert!(matches!(KeyGen::new(10, -1.0), Err(Error::Config(_))));
    }

    #[test]
    fn keys_are_named_s_dash_index() {
        assert_eq!(path(42), "/v1/sessions/s-42");
    }

    #[test]
    fn a_404_on_a_read_is_a_miss_and_other_statuses_are_errors() {
        assert_eq!(classify(Op::Get, Ok(StatusCode::OK)), CacheOutcome::Hit);
        assert_eq!(
            classify(Op::Get, Ok(StatusCode::NOT_FOUND)),
            CacheOutcome::Miss
        );
        assert_eq!(
            classify(Op::Put, Ok(StatusCode::NO_CONTENT)),
            CacheOutcome::Stored
        );
        assert_eq!(
            classify(Op::Put, Ok(StatusCode::NOT_FOUND)),
            CacheOutcome::Status(Op::Put, 404)
        );
        assert_eq!(
            classify(Op::Get, Ok(StatusCode::SERVICE_UNAVAILABLE)),
            CacheOutcome::Status(Op::Get, 503)
        );
        assert_eq!(
            classify(Op::Get, Err(TransportError::Timeout)),
            CacheOutcome::Transport(TransportError::Timeout)
        );
    }
}
