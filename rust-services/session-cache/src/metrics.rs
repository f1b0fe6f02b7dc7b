//! Cache metrics (names shared with the Go twin).
//!
//! `cache_requests_total{op,result}` is counted by the handler through
//! counters resolved once at start-up (one atomic add per request, no label
//! lookup). `cache_entries`, `cache_bytes` and `cache_evictions_total{reason}`
//! are read from the shards' own statistics at scrape time by a collector,
//! so they cannot drift from the cache and cost the request path nothing.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};

use parallax_common::metrics::Metrics;

use crate::cache::Cache;

/// The operation a request asked for: the `op` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Head,
    Put,
    Delete,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Get, Op::Head, Op::Put, Op::Delete];

    pub const fn label(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Head => "head",
            Op::Put => "put",
            Op::Delete => "delete",
        }
    }

    /// The results this operation can have, per the contract.
    pub const fn results(self) -> &'static [Outcome] {
        match self {
            Op::Get | Op::Head => &[Outcome::Hit, Outcome::Miss, Outcome::Invalid],
            Op::Put => &[Outcome::Stored, Outcome::Invalid],
            Op::Delete => &[Outcome::Deleted, Outcome::Miss, Outcome::Invalid],
        }
    }
}

/// What became of a request: the `result` label. `Invalid` covers every 400
/// and 413.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Miss,
    Stored,
    Deleted,
    Invalid,
}

impl Outcome {
    pub const fn label(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Stored => "stored",
            Outcome::Deleted => "deleted",
            Outcome::Invalid => "invalid",
        }
    }
}

/// The request counters, resolved per (op, result).
#[derive(Clone)]
pub struct CacheMetrics {
    /// Indexed `[op][outcome]`; `None` where the contract has no such pair.
    requests: Arc<[[Option<IntCounter>; 5]; 4]>,
}

impl CacheMetrics {
    /// Creates the cache metrics, reading sizes and evictions from `cache`,
    /// and registers them in `metrics`.
    pub fn register(metrics: &Metrics, cache: Arc<Cache>) -> Self {
        let requests = IntCounterVec::new(
            Opts::new(
                "cache_requests_total",
                "Session requests by operation and result.",
            ),
            &["op", "result"],
        )
        .expect("valid metric");
        metrics.register(requests.clone());
        // Every valid series exists from the start, so rates work at once.
        let mut table: [[Option<IntCounter>; 5]; 4] = Default::default();
        for op in Op::ALL {
            for &outcome in op.results() {
                table[op as usize][outcome as usize] =
                    Some(requests.with_label_values(&[op.label(), outcome.label()]));
            }
        }
        metrics.register(CacheCollector::new(cache));
        Self {
            requests: Arc::new(table),
        }
    }

    /// Counts one request.
    pub fn request(&self, op: Op, outcome: Outcome) {
        match &self.requests[op as usize][outcome as usize] {
            Some(counter) => counter.inc(),
            None => debug_assert!(false, "{op:?} cannot be {outcome:?}"),
        }
    }
}

/// Reports the cache's gauges and eviction counters from its statistics.
struct CacheCollector {
    cache: Arc<Cache>,
    descs: Vec<Desc>,
}

fn entries_gauge() -> IntGauge {
    IntGauge::new(
        "cache_entries",
        "Entries held (expired ones until removed).",
    )
    .expect("valid metric")
}

fn bytes_gauge() -> IntGauge {
    IntGauge::new(
        "cache_bytes",
        "Accounted bytes held: id + value + content type + 64 per entry.",
    )
    .expect("valid metric")
}

fn evictions_counter() -> IntCounterVec {
    IntCounterVec::new(
        Opts::new(
            "cache_evictions_total",
            "Entries removed by the cache itself, by reason: capacity or expired.",
        ),
        &["reason"],
    )
    .expect("valid metric")
}

impl CacheCollector {
    fn new(cache: Arc<Cache>) -> Self {
        let descs = [
            entries_gauge().desc(),
            bytes_gauge().desc(),
            evictions_counter().desc(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        Self { cache, descs }
    }
}

impl Collector for CacheCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    /// Fresh metrics set from one pass over the shards. Counters are rebuilt
    /// from the shards' running totals, which only grow.
    fn collect(&self) -> Vec<MetricFamily> {
        let stats = self.cache.stats();
        let entries = entries_gauge();
        entries.set(stats.entries as i64);
        let bytes = bytes_gauge();
        bytes.set(stats.bytes as i64);
        let evictions = evictions_counter();
        evictions
            .with_label_values(&["capacity"])
            .inc_by(stats.evicted_capacity);
        evictions
            .with_label_values(&["expired"])
            .inc_by(stats.evicted_expired);
        let mut families = entries.collect();
        families.extend(bytes.collect());
        families.extend(evictions.collect());
        families
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::HeaderValue;
    use bytes::Bytes;

    use super::*;

    #[test]
    fn every_contract_series_is_exported_from_the_start() {
        let metrics = Metrics::new();
        let _ = CacheMetrics::register(&metrics, Arc::new(Cache::new(1024, 1)));
        let text = metrics.render();
        for series in [
            r#"cache_requests_total{op="get",result="hit"} 0"#,
            r#"cache_requests_total{op="get",result="miss"} 0"#,
            r#"cache_requests_total{op="get",result="invalid"} 0"#,
            r#"cache_requests_total{op="head",result="hit"} 0"#,
            r#"cache_requests_total{op="head",result="miss"} 0"#,
            r#"cache_requests_total{op="head",result="invalid"} 0"#,
            r#"cache_requests_total{op="put",result="stored"} 0"#,
            r#"cache_requests_total{op="put",result="invalid"} 0"#,
            r#"cache_requests_total{op="delete",result="deleted"} 0"#,
            r#"cache_requests_total{op="delete",result="miss"} 0"#,
            r#"cache_requests_total{op="delete",result="invalid"} 0"#,
            r#"cache_evictions_total{reason="capacity"} 0"#,
            r#"cache_evictions_total{reason="expired"} 0"#,
            "cache_entries 0",
            "cache_bytes 0",
        ] {
            assert!(text.contains(series), "missing {series} in\n{text}");
        }
        assert!(text.contains("# TYPE cache_evictions_total counter"));
        assert!(text.contains("# TYPE cache_bytes gauge"));
    }

    #[test]
    fn sizes_and_evictions_are_read_from_the_cache_at_scrape_time() {
        let metrics = Metrics::new();
        let cache = Arc::new(Cache::new(2 * 100, 1));
        let requests = CacheMetrics::register(&metrics, cache.clone());
        let octet = HeaderValue::from_static("application/octet-stream");
        for id in ["a", "b", "c"] {
            cache
                .put(
                    id,
                    Bytes::from_static(b"x"),
                    octet.clone(),
                    Duration::from_secs(60),
                )
                .unwrap();
        }
        requests.request(Op::Put, Outcome::Stored);
        let text = metrics.render();
        let entry = 1 + 1 + 24 + 64;
        assert!(text.contains("cache_entries 2\n"), "{text}");
        assert!(
            text.contains(&format!("cache_bytes {}\n", 2 * entry)),
            "{text}"
        );
        assert!(text.contains(r#"cache_evictions_total{reason="capacity"} 1"#));
        assert!(text.contains(r#"cache_requests_total{op="put",result="stored"} 1"#));
    }
}
