//! The results file, `parallax.results/v2`: what one `parallax run` produced.
//!
//! v2 adds, to v1: CPU and RSS that may be `null` (not measured: a backend
//! given by URL without a pid or `/metrics`), per-route latency
//! ([`RouteResult`]), mismatches by JSON path ([`PathDifference`]) and the
//! experiment's gate budgets ([`BudgetSpec`]). v1 files still load: every
//! v1 document is a valid v2 one.
//!
//! Within v2, a backend may carry named extra figures ([`ExtraMetric`]):
//! what a bench measures beyond latency, CPU and RSS (the cache's RSS after
//! the fill and after churn, the fan-out's memory per idle connection, the
//! proxy's added µs per hop). The field is optional and absent when empty,
//! so files written before it still load and readers that do not know it
//! ignore it; no schema bump was needed.
//!
//! Plain data with public fields so the runner fills it in directly and the
//! gate and the renderers read it without accessors. Every field is described
//! in `docs/results-schema.md`; change both together. Latencies are integer
//! microseconds everywhere, and every backend carries its full HDR histogram
//! (lossless) so a later reader can compute any percentile or statistic the
//! summaries do not hold.

use std::collections::BTreeMap;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The value of [`RunResults::schema`] this crate writes.
pub const SCHEMA: &str = "parallax.results/v2";
/// The earlier schema, still read (a v1 document is a valid v2 one).
pub const SCHEMA_V1: &str = "parallax.results/v1";

/// One run: the machine, the mode and one result per scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// [`SCHEMA`] when written; [`SCHEMA_V1`] is read too, anything else
    /// refused.
    pub schema: String,
    /// When the run started, RFC 3339 in UTC (`2026-11-27T10:15:00Z`).
    pub created_at: String,
    /// The command line that produced the file, for the report header.
    pub command: String,
    /// Where it ran.
    pub machine: Machine,
    /// How the backends were loaded.
    pub mode: Mode,
    /// One entry per scenario, in the order they ran.
    pub scenarios: Vec<ScenarioResult>,
}

/// The machine a run was measured on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// `/etc/hostname` (or the kernel's hostname).
    pub hostname: String,
    /// CPUs this process may run on.
    pub cpus: usize,
    /// `MemTotal` from `/proc/meminfo`, in bytes.
    pub memory_bytes: u64,
    /// Kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
}

/// How the backends were loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Through the shadowing proxy: Go primary, Rust shadow, at the same time.
    Shadow,
    /// Each backend alone in turn (A, B, B, A): a pure performance comparison.
    Direct,
    /// Go against Go: the harness's own noise.
    Aa,
}

/// One scenario (ingest, cache or fan-out) of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// `ingest`, `cache` or `fanout`.
    pub scenario: String,
    /// What one counted request is: `requests`, `events` or `notifications`.
    pub unit: String,
    /// The offered (open-model) rate, in `unit`s per second.
    pub target_rate_per_sec: f64,
    /// Length of the measured part, warm-up excluded.
    pub duration_secs: f64,
    /// Warm-up before the measured part; not in any figure.
    pub warmup_secs: f64,
    /// One entry per backend; exactly one has [`Role::Baseline`] and at least
    /// one [`Role::Candidate`] for the gate to compare them.
    pub backends: Vec<BackendResult>,
    /// The proxy's comparison of the answers (shadow mode only).
    pub comparison: Option<Comparison>,
    /// Free-form remarks for the report (a backend that failed to start,
    /// slots sent late, ...).
    pub notes: Vec<String>,
    /// Latency per route and backend (v2; empty when not measured per route).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteResult>,
    /// The budgets the experiment file set for the gate (v2); flags given to
    /// `parallax gate` override them, and unset ones take the gate's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<BudgetSpec>,
    /// Each backend's capacity at an SLO (`parallax run --find-capacity`
    /// or a rate ladder `--rate A..BxF`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
    /// The harness's own noise for this scenario: the candidate/baseline
    /// ratios A/A runs of the same shape showed (`parallax run --noise`),
    /// shown beside this run's ratios; absent when none was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<Noise>,
}

/// Each backend's capacity: the highest offered rate it held within the
/// SLO with fewer than `max_late_ratio` late slots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// The latency objective, as given (`p99<20ms`).
    pub slo: String,
    /// Largest share of late (or failed) slots a held rate may have.
    pub max_late_ratio: f64,
    /// `ladder` (every rate of `--rate A..BxF` until one fails) or
    /// `search` (the ladder up, then bisection).
    pub method: String,
    /// One entry per backend, in the order of [`ScenarioResult::backends`].
    pub backends: Vec<BackendCapacity>,
}

/// One backend's capacity and every rate it was tried at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendCapacity {
    /// As in [`BackendResult::name`].
    pub name: String,
    /// The highest rate held, in the scenario's `unit`s per second; `None`
    /// (`null`) when not even the lowest rate tried held.
    pub capacity_per_sec: Option<f64>,
    /// True when the highest rate tried held: the capacity is at least
    /// this (the ladder's top or the generator's limit), not a measured
    /// ceiling.
    pub at_least: bool,
    /// Every probe, in the order run.
    pub probes: Vec<CapacityProbe>,
}

/// One backend at one offered rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityProbe {
    /// Offered (open-model) rate.
    pub rate_per_sec: f64,
    /// Requests measured.
    pub requests: u64,
    /// Slots sent late.
    pub late: u64,
    /// Failed requests.
    pub errors: u64,
    /// Median, µs from each slot's intended start.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// The SLO's percentile, µs.
    pub slo_us: u64,
    /// CPU-seconds the backend used in the probe; `None` when not measured.
    pub cpu_seconds: Option<f64>,
    /// Within the SLO with few enough late and failed slots.
    pub held: bool,
}

impl Capacity {
    /// The named backend's capacity entry.
    pub fn backend(&self, name: &str) -> Option<&BackendCapacity> {
        self.backends.iter().find(|b| b.name == name)
    }

    /// `candidate / baseline` capacity; `None` when either is unknown.
    pub fn ratio(&self, baseline: &str, candidate: &str) -> Option<f64> {
        let b = self.backend(baseline)?.capacity_per_sec?;
        let c = self.backend(candidate)?.capacity_per_sec?;
        (b > 0.0).then(|| c / b)
    }
}

/// The candidate/baseline ratios that A/A runs (the baseline against a
/// second copy of itself) showed for a scenario: what this harness reports
/// when nothing differs. One entry per A/A run in each list.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Noise {
    /// Where the figures came from (the A/A results files).
    pub sources: Vec<String>,
    /// p50 ratio of each A/A run.
    pub p50_ratio: Vec<f64>,
    /// p99 ratio of each A/A run.
    pub p99_ratio: Vec<f64>,
    /// Capacity ratio of each A/A run that measured capacity.
    #[serde(default)]
    pub capacity_ratio: Vec<f64>,
}

impl Noise {
    /// The ratios the A/A runs `runs` (`(where from, run)`) showed for
    /// `scenario`: the first candidate against the baseline, p50, p99 and
    /// (where measured) capacity; `None` when no run has the scenario.
    pub fn from_runs(scenario: &str, runs: &[(String, &RunResults)]) -> Option<Noise> {
        let mut noise = Noise::default();
        for (source, run) in runs {
            let Some(s) = run.scenario(scenario) else {
                continue;
            };
            let (Some(base), Some(cand)) = (s.baseline(), s.candidates().next()) else {
                continue;
            };
            let ratio = |c: u64, b: u64| (b > 0).then(|| c as f64 / b as f64);
            noise.sources.push(source.clone());
            noise
                .p50_ratio
                .extend(ratio(cand.latency.p50_us, base.latency.p50_us));
            noise
                .p99_ratio
                .extend(ratio(cand.latency.p99_us, base.latency.p99_us));
            if let Some(c) = &s.capacity {
                noise.capacity_ratio.extend(c.ratio(&base.name, &cand.name));
            }
        }
        (!noise.sources.is_empty()).then_some(noise)
    }

    /// The largest departure from 1 of `ratios`, folded above 1 (0.8 is as
    /// much noise as 1.25); 1.0 when empty.
    pub fn spread(ratios: &[f64]) -> f64 {
        ratios
            .iter()
            .filter(|r| r.is_finite() && **r > 0.0)
            .map(|r| r.max(1.0 / r))
            .fold(1.0, f64::max)
    }
}

/// One route of a scenario: each backend's latency on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteResult {
    /// The route template (`/v1/orders/{id}`), or `other`.
    pub route: String,
    /// One entry per backend that served the route.
    pub backends: Vec<RouteBackend>,
}

/// One backend's latency on one route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteBackend {
    /// The backend's name, as in [`BackendResult::name`].
    pub name: String,
    /// Requests measured on the route.
    pub requests: u64,
    /// Exact mean, µs.
    pub mean_us: f64,
    /// Median, µs (estimated from histogram buckets when `estimated`).
    pub p50_us: u64,
    /// 99th percentile, µs (likewise).
    pub p99_us: u64,
    /// True when the percentiles are interpolated within coarse histogram
    /// buckets (the proxy's Prometheus histogram) rather than read from an
    /// HDR histogram.
    #[serde(default)]
    pub estimated: bool,
}

/// The gate's budgets as an experiment file sets them: each `None` takes the
/// gate's default, each `Some(None)` (`"off"`) turns the check off.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetSpec {
    /// Largest candidate/baseline p99 ratio.
    #[serde(with = "limit", skip_serializing_if = "Option::is_none")]
    pub max_p99_ratio: Option<Option<f64>>,
    /// Largest candidate/baseline p50 ratio.
    #[serde(with = "limit", skip_serializing_if = "Option::is_none")]
    pub max_p50_ratio: Option<Option<f64>>,
    /// Largest candidate/baseline peak-RSS ratio.
    #[serde(with = "limit", skip_serializing_if = "Option::is_none")]
    pub max_rss_ratio: Option<Option<f64>>,
    /// Largest candidate/baseline CPU-per-request ratio.
    #[serde(with = "limit", skip_serializing_if = "Option::is_none")]
    pub max_cpu_ratio: Option<Option<f64>>,
    /// Largest share of mismatching comparisons.
    #[serde(with = "limit", skip_serializing_if = "Option::is_none")]
    pub max_mismatch_rate: Option<Option<f64>>,
    /// Largest share of failed requests per backend.
    #[serde(with = "limit", skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<Option<f64>>,
    /// Largest share of schedule slots sent late per backend.
    #[serde(with = "limit", skip_serializing_if = "Option::is_none")]
    pub max_late_rate: Option<Option<f64>>,
    /// Largest growth against `--baseline`, as a fraction (0.1 = 10 %).
    #[serde(with = "limit", skip_serializing_if = "Option::is_none")]
    pub max_regression: Option<Option<f64>>,
    /// Smallest candidate/baseline capacity ratio (runs that measured
    /// capacity).
    #[serde(with = "limit", skip_serializing_if = "Option::is_none")]
    pub min_capacity_ratio: Option<Option<f64>>,
}

/// A budget is a number or the string `"off"`.
mod limit {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Option<f64>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(Some(x)) => s.serialize_f64(*x),
            _ => s.serialize_str("off"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(x) if x.is_finite() && x >= 0.0 => Ok(Some(Some(x))),
            Raw::Number(x) => Err(serde::de::Error::custom(format!(
                "{x} is not a budget; give a number >= 0 or \"off\""
            ))),
            Raw::Text(t) if t.eq_ignore_ascii_case("off") => Ok(Some(None)),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "{t:?} is not a budget; give a number >= 0 or \"off\""
            ))),
        }
    }
}

/// What one backend did in one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendResult {
    /// `go`, `rust`; in A/A mode `go-a`, `go-b`.
    pub name: String,
    /// `go` or `rust`.
    pub language: String,
    /// Which side of the comparison this backend is on.
    pub role: Role,
    /// `requests` / `duration_secs`.
    pub achieved_rate_per_sec: f64,
    /// Requests completed in the measured part (errors included).
    pub requests: u64,
    /// Requests that failed (transport error or unexpected status).
    pub errors: u64,
    /// Schedule slots sent after their intended time (open model): the
    /// generator could not keep up; their latency still counts from the slot.
    pub late: u64,
    /// Summary of `histogram`.
    pub latency: LatencySummary,
    /// The latency HDR histogram in µs: V2 + deflate serialisation, base64
    /// (standard alphabet, padded). See [`crate::histogram`].
    pub histogram: String,
    /// Per-window figures over the measured part, in time order.
    pub timeline: Vec<Window>,
    /// User + system CPU time the backend's processes used in the measured
    /// part; `None` (`null`) when it could not be measured.
    pub cpu_seconds: Option<f64>,
    /// Largest resident set size seen while sampling, in bytes; `None` when
    /// it could not be measured.
    pub peak_rss_bytes: Option<u64>,
    /// Where `cpu_seconds` and `peak_rss_bytes` came from (`cgroup v1:
    /// cpuacct.usage, memory.max_usage_in_bytes`, `/proc sampling of its
    /// process group`, ...); absent in files that did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounting: Option<String>,
    /// CPU and memory over the run, about one sample a second (empty when
    /// not sampled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<UsageSample>,
    /// Named figures beyond the common ones, in the order measured (v2;
    /// empty, and absent from the file, when there are none). Names are
    /// unique per backend; the same name on two backends is the same
    /// figure, so the table sets them side by side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<ExtraMetric>,
}

/// One named figure a bench measured beyond latency, CPU and RSS, with its
/// unit and meaning written into the file: a reader (the table, the HTML
/// report, a later comparison) needs no bench-specific code to show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtraMetric {
    /// snake_case, unit last where it has one (`rss_after_fill_bytes`,
    /// `added_p50_us`, `idle_bytes_per_connection`).
    pub name: String,
    /// The value; `None` (`null`) when it could not be measured.
    pub value: Option<f64>,
    /// `bytes`, `us`, `seconds`, `ratio`, `percent`, `count` or
    /// `per_sec`: how the table formats it.
    pub unit: String,
    /// Which way is better, when either is: `lower` or `higher`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub better: Option<Better>,
    /// One sentence: what was measured, and when.
    pub description: String,
}

/// Which way an [`ExtraMetric`] is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
}

impl ExtraMetric {
    /// A measured figure.
    pub fn new(
        name: impl Into<String>,
        value: f64,
        unit: impl Into<String>,
        better: Option<Better>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            value: value.is_finite().then_some(value),
            unit: unit.into(),
            better,
            description: description.into(),
        }
    }
}

/// One sample of a backend's CPU and memory.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UsageSample {
    /// Seconds since the backends were started.
    pub t_secs: f64,
    /// CPU-seconds used so far.
    pub cpu_seconds: f64,
    /// Memory now, bytes (the cgroup's usage, or the summed RSS).
    pub memory_bytes: u64,
}

/// Which side of the comparison a backend is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// What the candidate is measured against: Go (`go-a` in A/A mode).
    Baseline,
    /// What is being judged: Rust (`go-b` in A/A mode).
    Candidate,
}

/// Percentiles of one latency histogram, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Recorded samples.
    pub count: u64,
    /// Smallest recorded latency.
    pub min_us: u64,
    /// Arithmetic mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest recorded latency.
    pub max_us: u64,
}

impl LatencySummary {
    /// The summary of a histogram of µs values (all zero when it is empty).
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            min_us: h.min(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// One window of the timeline (typically one second).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Window start, seconds from the start of the measured part.
    pub t_secs: f64,
    /// Requests completed in the window.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Median latency in the window, µs (0 when it saw no request).
    pub p50_us: u64,
    /// 99th percentile in the window, µs.
    pub p99_us: u64,
    /// Largest latency in the window, µs.
    pub max_us: u64,
}

impl Window {
    /// A window from its own histogram (every completed request recorded,
    /// errors included) and its error count.
    pub fn from_histogram(t_secs: f64, h: &Histogram<u64>, errors: u64) -> Self {
        let s = LatencySummary::from_histogram(h);
        Self {
            t_secs,
            requests: s.count,
            errors,
            p50_us: s.p50_us,
            p99_us: s.p99_us,
            max_us: s.max_us,
        }
    }
}

/// The proxy's verdicts on primary vs shadow answers (shadow mode).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Comparison {
    /// Pairs compared (both sides answered).
    pub compared: u64,
    /// Pairs with no difference left after the route's rules.
    pub matched: u64,
    /// Pairs with a real difference.
    pub mismatched: u64,
    /// Pairs whose differences were classed as noise (they differ between
    /// two primaries too).
    pub noise: u64,
    /// Mirrored requests not compared (shadow queue full, shadow timeout).
    pub dropped: u64,
    /// Mismatched pairs by difference class (`status`, `value`, `missing`,
    /// ...; a pair may count in several).
    pub classes: BTreeMap<String, u64>,
    /// The join of both backends' Kafka side effects (ingest only).
    pub kafka: Option<KafkaComparison>,
    /// Mismatches by route and JSON path (v2), most frequent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<PathDifference>,
    /// A few mismatch samples of the run as the proxy wrote them to its
    /// sample log (redacted; one JSON document each, kept as text so every
    /// number stays exact): the request, both answers and their
    /// differences (v2; at most [`MAX_SAMPLES_PER_ROUTE`] per route).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<String>,
}

/// Mismatch samples kept per route in a results file.
pub const MAX_SAMPLES_PER_ROUTE: usize = 3;

/// How often one path differed on one route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathDifference {
    /// The route template, or `other`.
    pub route: String,
    /// `status`, `header:<name>`, `body`, or a JSON pointer with array
    /// indices folded to `*` (`/items/*/total`).
    pub path: String,
    /// The compare engine's kind (`value`, `type`, `missing`, ...).
    pub kind: String,
    /// Mismatched pairs in which it differed.
    pub count: u64,
    /// One example: the baseline's value (`None`: absent).
    pub baseline: Option<String>,
    /// The candidate's value in the same example.
    pub candidate: Option<String>,
}

/// The join of primary and shadow Kafka records by event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KafkaComparison {
    /// Records present on both sides with equal content.
    pub matched: u64,
    /// Records the primary wrote and the shadow did not.
    pub missing_in_shadow: u64,
    /// Records only the shadow wrote.
    pub extra_in_shadow: u64,
    /// Records on both sides whose content differs.
    pub different: u64,
}

impl KafkaComparison {
    /// Records seen on either side.
    pub fn total(&self) -> u64 {
        self.matched + self.missing_in_shadow + self.extra_in_shadow + self.different
    }

    /// Records that did not match.
    pub fn bad(&self) -> u64 {
        self.missing_in_shadow + self.extra_in_shadow + self.different
    }
}

impl RunResults {
    /// An empty run stamped now, on this machine.
    pub fn new(command: impl Into<String>, mode: Mode) -> Self {
        Self {
            schema: SCHEMA.to_owned(),
            created_at: now_rfc3339(),
            command: command.into(),
            machine: Machine::detect(),
            mode,
            scenarios: Vec::new(),
        }
    }

    /// Reads and checks a results file. Errors name the file and, for a
    /// malformed file, the JSON path of the offending field.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| e.in_file(path))
    }

    /// Parses and checks a results document (see [`RunResults::load`]).
    pub fn from_json(text: &str) -> Result<Self, Error> {
        // Check the schema tag first so an unrelated JSON file gets the
        // clearer message rather than "missing field".
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::Parse {
            path: None,
            field: String::from("."),
            message: e.to_string(),
        })?;
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA) | Some(SCHEMA_V1) => {}
            other => {
                return Err(Error::Schema {
                    path: None,
                    found: other.map(str::to_owned),
                })
            }
        }
        serde_path_to_error::deserialize(value).map_err(|e| Error::Parse {
            path: None,
            field: e.path().to_string(),
            message: e.inner().to_string(),
        })
    }

    /// Writes the file as pretty JSON (atomically: a temporary file renamed
    /// over the target, so a reader never sees half a file).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let mut text = serde_json::to_string_pretty(self).expect("plain data serialises");
        text.push('\n');
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// The scenario of that name, if the run has it.
    pub fn scenario(&self, name: &str) -> Option<&ScenarioResult> {
        self.scenarios.iter().find(|s| s.scenario == name)
    }
}

impl ScenarioResult {
    /// The backend of that name.
    pub fn backend(&self, name: &str) -> Option<&BackendResult> {
        self.backends.iter().find(|b| b.name == name)
    }

    /// The first backend with [`Role::Baseline`].
    pub fn baseline(&self) -> Option<&BackendResult> {
        self.backends.iter().find(|b| b.role == Role::Baseline)
    }

    /// The backends with [`Role::Candidate`].
    pub fn candidates(&self) -> impl Iterator<Item = &BackendResult> {
        self.backends.iter().filter(|b| b.role == Role::Candidate)
    }
}

impl BackendResult {
    /// The extra figure of that name.
    pub fn extra(&self, name: &str) -> Option<&ExtraMetric> {
        self.extra.iter().find(|m| m.name == name)
    }

    /// Decodes [`BackendResult::histogram`].
    pub fn decode_histogram(&self) -> Result<Histogram<u64>, Error> {
        crate::histogram::decode(&self.histogram)
    }
}

impl Machine {
    /// This machine, from `/etc/hostname` and `/proc`. Fields that cannot be
    /// read are left empty or zero rather than failing a run.
    pub fn detect() -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let mut hostname = read("/etc/hostname");
        if hostname.is_empty() {
            hostname = read("/proc/sys/kernel/hostname");
        }
        let memory_bytes = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kib| kib * 1024);
        Self {
            hostname,
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_bytes,
            kernel: read("/proc/sys/kernel/osrelease"),
        }
    }
}

/// Now as RFC 3339 UTC with second precision (`2026-11-27T10:15:00Z`).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339_from_unix(secs)
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC.
pub fn rfc3339_from_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_from_unix(1_795_774_509), "2026-11-27T10:15:09Z");
    }

    #[test]
    fn modes_and_roles_serialise_lowercase() {
        assert_eq!(serde_json::to_string(&Mode::Aa).unwrap(), "\"aa\"");
        assert_eq!(serde_json::to_string(&Mode::Shadow).unwrap(), "\"shadow\"");
        assert_eq!(
            serde_json::to_string(&Role::Candidate).unwrap(),
            "\"candidate\""
        );
    }

    #[test]
    fn machine_detect_reads_this_machine() {
        let m = Machine::detect();
        assert!(m.cpus >= 1);
        assert!(m.memory_bytes > 0);
        assert!(!m.kernel.is_empty());
    }

    #[test]
    fn a_foreign_schema_is_refused_before_field_checks() {
        let err = RunResults::from_json(r#"{"schema":"other/v9"}"#).unwrap_err();
        assert!(err.to_string().contains("other/v9"), "{err}");
    }

    #[test]
    fn a_v1_file_still_loads() {
        let mut v = serde_json::to_value(crate::synthetic::run(
            Mode::Shadow,
            vec![crate::synthetic::scenario("cache", "requests", vec![])],
        ))
        .unwrap();
        v["schema"] = serde_json::json!(SCHEMA_V1);
        let run = RunResults::from_json(&v.to_string()).unwrap();
        assert_eq!(run.scenarios[0].scenario, "cache");
        assert!(run.scenarios[0].routes.is_empty());
        assert!(run.scenarios[0].budgets.is_none());
    }

    #[test]
    fn extra_figures_round_trip_and_files_without_them_load() {
        let mut run = crate::synthetic::run(
            Mode::Direct,
            vec![crate::synthetic::scenario("fanout", "connections", vec![])],
        );
        let text = serde_json::to_string(&run).unwrap();
        assert!(
            !text.contains("\"extra\""),
            "empty extras stay out of the file"
        );
        let mut b = crate::synthetic::backend(
            "go",
            Role::Baseline,
            crate::synthetic::LogNormal {
                median_us: 100.0,
                sigma: 0.1,
            },
            1,
            10,
            1,
        );
        b.extra.push(ExtraMetric::new(
            "idle_bytes_per_connection",
            7_300.0,
            "bytes",
            Some(Better::Lower),
            "RSS growth per idle connection",
        ));
        b.extra
            .push(ExtraMetric::new("unmeasurable", f64::NAN, "us", None, "x"));
        run.scenarios[0].backends.push(b);
        let back = RunResults::from_json(&serde_json::to_string(&run).unwrap()).unwrap();
        let m = back.scenarios[0].backends[0]
            .extra("idle_bytes_per_connection")
            .unwrap();
        assert_eq!(m.value, Some(7_300.0));
        assert_eq!(m.better, Some(Better::Lower));
        assert_eq!(
            back.scenarios[0].backends[0]
                .extra("unmeasurable")
                .unwrap()
                .value,
            None,
            "a non-finite figure is written as not measured"
        );
    }

    #[test]
    fn unmeasured_resources_are_null_not_zero() {
        let mut b = crate::synthetic::backend(
            "rust",
            Role::Candidate,
            crate::synthetic::LogNormal {
                median_us: 100.0,
                sigma: 0.1,
            },
            1,
            100,
            1,
        );
        b.cpu_seconds = None;
        b.peak_rss_bytes = None;
        let v = serde_json::to_value(&b).unwrap();
        assert!(v["cpu_seconds"].is_null() && v["peak_rss_bytes"].is_null());
    }

    #[test]
    fn budgets_take_numbers_and_off_and_name_a_bad_value() {
        let spec: BudgetSpec =
            toml::from_str("max_p99_ratio = 1.2\nmax_rss_ratio = \"off\"").unwrap();
        assert_eq!(spec.max_p99_ratio, Some(Some(1.2)));
        assert_eq!(spec.max_rss_ratio, Some(None));
        assert_eq!(spec.max_p50_ratio, None);
        let back: BudgetSpec =
            serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
        let e = toml::from_str::<BudgetSpec>("max_p99_ratio = \"high\"").unwrap_err();
        assert!(e.to_string().contains("max_p99_ratio"), "{e}");
        assert!(e.to_string().contains("\"off\""), "{e}");
        let e = toml::from_str::<BudgetSpec>("max_p99 = 1").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn a_malformed_field_is_named_by_path() {
        let mut run = RunResults::new("test", Mode::Shadow);
        run.scenarios.push(ScenarioResult {
            scenario: "ingest".into(),
            unit: "events".into(),
            target_rate_per_sec: 1.0,
            duration_secs: 1.0,
            warmup_secs: 0.0,
            backends: vec![],
            comparison: None,
            notes: vec![],
            routes: vec![],
            budgets: None,
            capacity: None,
            noise: None,
        });
        let mut v = serde_json::to_value(&run).unwrap();
        v["scenarios"][0]["duration_secs"] = serde_json::json!("ten");
        let err = RunResults::from_json(&v.to_string()).unwrap_err();
        assert!(
            err.to_string().contains("scenarios[0].duration_secs"),
            "{err}"
        );
    }
}
