//! Synthetic runs from seeded distributions, for tests and for rendering a
//! sample report without a cluster.
//!
//! Latencies are log-normal (a median and a spread), which is the usual first
//! approximation of service latency: a body near the median and a long right
//! tail. Everything is derived from the seed, so a test that uses a seed sees
//! the same data every time.

use hdrhistogram::Histogram;

use crate::histogram;
use crate::results::{
    BackendResult, LatencySummary, Machine, Mode, Role, RunResults, ScenarioResult, Window, SCHEMA,
};
use crate::stats::Rng;

/// An empty µs histogram with the range the runner uses (1 µs to 1 hour, 3
/// significant digits).
pub fn empty_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// A log-normal latency distribution, in µs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogNormal {
    /// Median latency.
    pub median_us: f64,
    /// Standard deviation of the log; 0.5 is a moderately long tail.
    pub sigma: f64,
}

impl LogNormal {
    /// One sample.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        (self.median_us * (self.sigma * rng.normal()).exp())
            .round()
            .max(1.0) as u64
    }

    /// `n` samples into a new histogram.
    pub fn histogram(&self, seed: u64, n: u64) -> Histogram<u64> {
        let mut rng = Rng::new(seed);
        let mut h = empty_histogram();
        for _ in 0..n {
            h.saturating_record(self.sample(&mut rng));
        }
        h
    }

    /// The same distribution, every sample multiplied by `factor`.
    pub fn scaled(self, factor: f64) -> Self {
        Self {
            median_us: self.median_us * factor,
            ..self
        }
    }
}

/// A backend that served `requests` samples of `latency` spread evenly over
/// `windows` one-second windows, with its histogram, summary and timeline
/// filled in consistently. CPU is 1 ms per 10 requests and RSS 64 MiB; set
/// the fields afterwards to model anything else.
pub fn backend(
    name: &str,
    role: Role,
    latency: LogNormal,
    seed: u64,
    requests: u64,
    windows: usize,
) -> BackendResult {
    let windows = windows.max(1);
    let mut rng = Rng::new(seed);
    let mut all = empty_histogram();
    let mut timeline = Vec::with_capacity(windows);
    for w in 0..windows {
        let share = requests / windows as u64 + u64::from((w as u64) < requests % windows as u64);
        let mut h = empty_histogram();
        for _ in 0..share {
            h.saturating_record(latency.sample(&mut rng));
        }
        all.add(&h).expect("same bounds");
        timeline.push(Window::from_histogram(w as f64, &h, 0));
    }
    BackendResult {
        name: name.into(),
        language: if name.starts_with("rust") {
            "rust"
        } else {
            "go"
        }
        .into(),
        role,
        achieved_rate_per_sec: requests as f64 / windows as f64,
        requests,
        errors: 0,
        late: 0,
        latency: LatencySummary::from_histogram(&all),
        histogram: histogram::encode(&all),
        timeline,
        cpu_seconds: Some(requests as f64 / 10_000.0),
        peak_rss_bytes: Some(64 << 20),
        accounting: None,
        usage: Vec::new(),
        extra: Vec::new(),
    }
}

/// A scenario over `backends`, its duration taken from the first backend's
/// timeline.
pub fn scenario(name: &str, unit: &str, backends: Vec<BackendResult>) -> ScenarioResult {
    let duration = backends.first().map_or(0, |b| b.timeline.len()) as f64;
    let rate = backends.first().map_or(0.0, |b| b.achieved_rate_per_sec);
    ScenarioResult {
        scenario: name.into(),
        unit: unit.into(),
        target_rate_per_sec: rate,
        duration_secs: duration,
        warmup_secs: 0.0,
        backends,
        comparison: None,
        notes: Vec::new(),
        routes: Vec::new(),
        budgets: None,
        capacity: None,
        noise: None,
    }
}

/// A run holding `scenarios`, stamped with a fixed date and machine so its
/// JSON is reproducible.
pub fn run(mode: Mode, scenarios: Vec<ScenarioResult>) -> RunResults {
    RunResults {
        schema: SCHEMA.into(),
        created_at: "2026-11-27T10:00:00Z".into(),
        command: "synthetic".into(),
        machine: Machine {
            hostname: "synthetic".into(),
            cpus: 2,
            memory_bytes: 8 << 30,
            kernel: "6.1.0".into(),
        },
        mode,
        scenarios,
    }
}

/// The usual Go-baseline / Rust-candidate pair of one scenario: Go at
/// `go`, Rust at `rust`, `requests` each over `windows` seconds.
pub fn pair(
    name: &str,
    go: LogNormal,
    rust: LogNormal,
    seed: u64,
    requests: u64,
    windows: usize,
) -> ScenarioResult {
    scenario(
        name,
        "requests",
        vec![
            backend("go", Role::Baseline, go, seed, requests, windows),
            backend(
                "rust",
                Role::Candidate,
                rust,
                seed.wrapping_add(0x9e37_79b9),
                requests,
                windows,
            ),
        ],
    )
}
