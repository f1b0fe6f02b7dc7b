//! What a scenario reports, as plain serde structs: one per backend run,
//! written to `results.json` by `parallax bench` so runs can be compared
//! later without re-parsing printed tables.
//!
//! Units are in the field names (`_us`, `_bytes`, `_per_sec`). Errors keep
//! transport failures apart from HTTP answers, and a 404 on a cache read is
//! a miss, not an error.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::http::TransportError;
use crate::pacing::Report;

/// Latency percentiles in µs, measured from each request's slot.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Latency {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

/// How well a paced run kept its schedule.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Load {
    /// The rate asked for.
    pub target_rate_per_sec: f64,
    /// Measured requests completed per second of measured time.
    pub achieved_rate_per_sec: f64,
    /// Measured requests (after the warm-up).
    pub requests: u64,
    /// Requests sent during the warm-up, not measured.
    pub warmup_requests: u64,
    /// Measured slots taken later than the late threshold (still sent).
    pub late_slots: u64,
    /// `late_slots / requests`.
    pub late_ratio: f64,
    /// Slots never sent because the run passed its overrun.
    pub not_sent: u64,
    /// From the end of the warm-up to the last measured completion.
    pub measured_secs: f64,
    pub latency: Latency,
    /// The whole latency histogram behind `latency` (µs from each slot),
    /// for a caller that writes the results model
    /// (`parallax_harness::rounds`); not serialised here.
    #[serde(skip)]
    pub histogram: Option<Histogram<u64>>,
}

impl Load {
    pub fn from_report<O>(target_rate_per_sec: f64, report: &Report<O>) -> Self {
        Self {
            target_rate_per_sec,
            achieved_rate_per_sec: report.achieved_rate(),
            requests: report.measured,
            warmup_requests: report.warmup,
            late_slots: report.late,
            late_ratio: if report.measured > 0 {
                report.late as f64 / report.measured as f64
            } else {
                0.0
            },
            not_sent: report.not_sent,
            measured_secs: report.measured_elapsed.as_secs_f64(),
            latency: Latency::from_histogram(&report.latency_us),
            histogram: Some(report.latency_us.clone()),
        }
    }
}

/// Failed requests, by kind. Misses (404 on a read) are not here.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Errors {
    /// Unexpected HTTP answers by `"<METHOD> <status>"`, e.g. `"PUT 503"`.
    pub status: BTreeMap<String, u64>,
    /// Requests without an HTTP answer, by [`TransportError`].
    pub transport: BTreeMap<TransportError, u64>,
}

impl Errors {
    pub fn count_status(&mut self, method: &str, status: u16, count: u64) {
        *self.status.entry(format!("{method} {status}")).or_default() += count;
    }

    pub fn count_transport(&mut self, error: TransportError, count: u64) {
        *self.transport.entry(error).or_default() += count;
    }

    pub fn merge(&mut self, other: &Errors) {
        for (k, v) in &other.status {
            *self.status.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.transport {
            *self.transport.entry(*k).or_default() += v;
        }
    }

    pub fn status_total(&self) -> u64 {
        self.status.values().sum()
    }

    pub fn transport_total(&self) -> u64 {
        self.transport.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.status_total() == 0 && self.transport_total() == 0
    }
}

/// One run of the `cache` scenario against one backend.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CacheResult {
    /// Keys PUT once before the run so that reads mostly hit.
    pub preload_puts: u64,
    pub load: Load,
    /// Measured GETs answered 200.
    pub hits: u64,
    /// Measured GETs answered 404 (a legitimate miss).
    pub misses: u64,
    /// Measured PUTs answered 204.
    pub stored: u64,
    /// Everything else, preload and warm-up included.
    pub errors: Errors,
}

impl CacheResult {
    /// `hits / (hits + misses)`.
    pub fn hit_ratio(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads > 0 {
            self.hits as f64 / reads as f64
        } else {
            0.0
        }
    }
}

/// The server's memory at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct MemorySample {
    /// Resident set size of the server process.
    pub rss_bytes: u64,
    /// The server's own `cache_bytes` gauge (accounted bytes).
    pub cache_bytes: u64,
    /// The server's `cache_entries` gauge.
    pub cache_entries: u64,
    /// `rss_bytes / cache_bytes`: what one accounted byte costs in RAM.
    pub rss_per_accounted_byte: f64,
}

impl MemorySample {
    pub fn new(rss_bytes: u64, cache_bytes: u64, cache_entries: u64) -> Self {
        Self {
            rss_bytes,
            cache_bytes,
            cache_entries,
            rss_per_accounted_byte: if cache_bytes > 0 {
                rss_bytes as f64 / cache_bytes as f64
            } else {
                0.0
            },
        }
    }
}

/// One run of the `churn` scenario against one backend.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChurnResult {
    /// PUTs of fresh keys until the cache was full.
    pub fill_puts: u64,
    /// Accounted bytes those PUTs wrote (before evictions).
    pub fill_accounted_bytes: u64,
    /// The churn PUTs: random keys, random sizes, constant eviction.
    pub load: Load,
    /// Churn PUTs answered 204.
    pub stored: u64,
    /// Right after the fill, before the churn.
    pub start: MemorySample,
    /// Right after the churn.
    pub end: MemorySample,
    /// `(end.rss_bytes - start.rss_bytes) / start.rss_bytes`, in percent.
    pub rss_growth_pct: f64,
    /// Fill and churn errors.
    pub errors: Errors,
}

/// CPU and memory of the server process over one run, read from `/proc`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ProcessStats {
    /// User + system CPU time the server used during the measured phase
    /// (warm-up included, preload/fill excluded).
    pub cpu_seconds: f64,
    /// CPU time the in-process driver used over the same phase.
    pub driver_cpu_seconds: f64,
    /// CPU time everything else on the machine used over the same phase:
    /// competing work that skews the figures (0 on a quiet machine).
    pub other_cpu_seconds: f64,
    /// The server's highest RSS over its whole life (`VmHWM`).
    pub peak_rss_bytes: u64,
    /// The server's RSS when the run ended.
    pub end_rss_bytes: u64,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> CacheResult {
        let mut errors = Errors::default();
        errors.count_status("PUT", 503, 2);
        errors.count_transport(TransportError::Timeout, 1);
        CacheResult {
            preload_puts: 100,
            load: Load {
                target_rate_per_sec: 1000.0,
                achieved_rate_per_sec: 999.5,
                requests: 10_000,
                warmup_requests: 5_000,
                late_slots: 3,
                late_ratio: 0.0003,
                not_sent: 0,
                measured_secs: 10.005,
                latency: Latency {
                    p50_us: 100,
                    p90_us: 200,
                    p99_us: 300,
                    p999_us: 400,
                    max_us: 500,
                    mean_us: 120.5,
                },
                histogram: None,
            },
            hits: 8_900,
            misses: 100,
            stored: 997,
            errors,
        }
    }

    #[test]
    fn a_cache_result_serialises_to_the_documented_shape() {
        let value = serde_json::to_value(sample()).unwrap();
        assert_eq!(
            value,
            json!({
                "preload_puts": 100,
                "load": {
                    "target_rate_per_sec": 1000.0,
                    "achieved_rate_per_sec": 999.5,
                    "requests": 10000,
                    "warmup_requests": 5000,
                    "late_slots": 3,
                    "late_ratio": 0.0003,
                    "not_sent": 0,
                    "measured_secs": 10.005,
                    "latency": {
                        "p50_us": 100, "p90_us": 200, "p99_us": 300,
                        "p999_us": 400, "max_us": 500, "mean_us": 120.5
                    }
                },
                "hits": 8900,
                "misses": 100,
                "stored": 997,
                "errors": { "status": { "PUT 503": 2 }, "transport": { "timeout": 1 } }
            })
        );
    }

    #[test]
    fn a_cache_result_reads_back_unchanged() {
        let text = serde_json::to_string(&sample()).unwrap();
        assert_eq!(
            serde_json::from_str::<CacheResult>(&text).unwrap(),
            sample()
        );
    }

    #[test]
    fn a_churn_result_reports_memory_at_start_and_end() {
        let result = ChurnResult {
            start: MemorySample::new(2_000, 1_000, 10),
            end: MemorySample::new(2_200, 1_000, 10),
            rss_growth_pct: 10.0,
            ..ChurnResult::default()
        };
        let value = serde_json::to_value(result).unwrap();
        assert_eq!(
            value["start"],
            json!({"rss_bytes": 2000, "cache_bytes": 1000, "cache_entries": 10, "rss_per_accounted_byte": 2.0})
        );
        assert_eq!(value["end"]["rss_per_accounted_byte"], json!(2.2));
        assert_eq!(value["rss_growth_pct"], json!(10.0));
    }

    #[test]
    fn misses_are_not_errors() {
        let result = CacheResult {
            hits: 3,
            misses: 1,
            ..CacheResult::default()
        };
        assert!(result.errors.is_empty());
        assert_eq!(result.hit_ratio(), 0.75);
    }
}
