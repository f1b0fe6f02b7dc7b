//! The Prometheus text exposition format, read: samples with their labels,
//! counters summed by label, and histograms (cumulative `_bucket{le=...}`
//! series plus `_sum` and `_count`) with their mean and interpolated
//! quantiles.
//!
//! The one parser of the project: a process's `/metrics` page is how it is
//! seen from outside, as its `/proc` entries are. It lives here, below
//! everything (the load generator, the harness, the proxy, and the
//! black-box conformance suite, which may link nothing of the twins), so
//! that every reader of a `/metrics` page — the harness scraping the proxy
//! and a backend's `process_*` metrics, the cache-churn driver reading the
//! cache's own gauges, the proxy's benchmarks, the conformance suite
//! checking the twins' series — reads it the same way.
//! `parallax_harness::prom` re-exports it.
//!
//! Enough of the format for those pages: comments and blank lines are
//! skipped, label values may hold escaped quotes, a timestamp after the
//! value is ignored, and numbers may be in Go's exponent form
//! (`1.073741824e+09`).

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether every `(key, value)` of `filter` is a label of this sample.
    pub fn matches(&self, filter: &[(&str, &str)]) -> bool {
        filter.iter().all(|(k, v)| self.label(k) == Some(*v))
    }
}

/// Every sample of `text`; lines that do not parse are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let mut key = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(i + 1);
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    if chars.next().map(|(_, c)| c) != Some('"') {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            '"' => break,
                            other => value.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                other => key.push(other),
            }
        }
        rest = &inner[end?..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// The sum of every sample named `name` whose labels match `filter`
/// (`None` when there is none).
pub fn sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> Option<f64> {
    let mut found = false;
    let total = samples
        .iter()
        .filter(|s| s.name == name && s.matches(filter))
        .inspect(|_| found = true)
        .map(|s| s.value)
        .sum();
    found.then_some(total)
}

/// One histogram (summed over the series that match a filter).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PromHistogram {
    /// (upper bound, cumulative count), ascending, `+Inf` last.
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

/// The histogram `name` (`name_bucket`, `name_sum`, `name_count`) summed
/// over the series matching `filter`.
pub fn histogram(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> PromHistogram {
    let bucket_name = format!("{name}_bucket");
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for s in samples
        .iter()
        .filter(|s| s.name == bucket_name && s.matches(filter))
    {
        let Some(le) = s.label("le").and_then(|l| match l {
            "+Inf" => Some(f64::INFINITY),
            l => l.parse().ok(),
        }) else {
            continue;
        };
        match buckets.iter_mut().find(|(b, _)| *b == le) {
            Some((_, c)) => *c += s.value,
            None => buckets.push((le, s.value)),
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    PromHistogram {
        buckets,
        sum: sum(samples, &format!("{name}_sum"), filter).unwrap_or(0.0),
        count: sum(samples, &format!("{name}_count"), filter).unwrap_or(0.0),
    }
}

impl PromHistogram {
    /// This minus an earlier reading of the same series.
    pub fn since(&self, earlier: &PromHistogram) -> PromHistogram {
        PromHistogram {
            buckets: self
                .buckets
                .iter()
                .map(|(le, c)| {
                    let before = earlier
                        .buckets
                        .iter()
                        .find(|(b, _)| b == le)
                        .map_or(0.0, |(_, c)| *c);
                    (*le, c - before)
                })
                .collect(),
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    /// The exact mean (`sum / count`), 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count
        } else {
            0.0
        }
    }

    /// The `q` quantile, interpolated linearly within its bucket (as
    /// PromQL's `histogram_quantile` does); a quantile in the `+Inf` bucket
    /// is the largest finite bound. 0 when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        let total = self.buckets.last().map_or(0.0, |(_, c)| *c);
        if total <= 0.0 {
            return 0.0;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, c) in &self.buckets {
            if c >= rank {
                if le.is_infinite() {
                    return lower.0;
                }
                let width = c - lower.1;
                let frac = if width > 0.0 {
                    (rank - lower.1) / width
                } else {
                    1.0
                };
                return lower.0 + (le - lower.0) * frac;
            }
            lower = (le, c);
        }
        lower.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_read_in_go_and_rust_number_formats() {
        let text = "# HELP cache_bytes Accounted bytes.\n\
                    # TYPE cache_bytes gauge\n\
                    cache_bytes 1.073741824e+09\n\
                    cache_bytes_other 5\n\
                    cache_entries 32768\n";
        let samples = parse(text);
        assert_eq!(sum(&samples, "cache_bytes", &[]), Some(1_073_741_824.0));
        assert_eq!(sum(&samples, "cache_entries", &[]), Some(32_768.0));
        assert_eq!(sum(&samples, "cache_evictions_total", &[]), None);
    }

    const TEXT: &str = r#"# HELP x_total things
# TYPE x_total counter
x_total{route="/a",result="match"} 3
x_total{route="/b",result="match"} 4
x_total{route="/b",result="mis\"match"} 1 1700000000000
process_cpu_seconds_total 1.5
lat_bucket{route="/a",le="0.001"} 0
lat_bucket{route="/a",le="0.01"} 50
lat_bucket{route="/a",le="0.1"} 100
lat_bucket{route="/a",le="+Inf"} 100
lat_sum{route="/a"} 1.0
lat_count{route="/a"} 100
lat_bucket{route="/b",le="0.001"} 10
lat_bucket{route="/b",le="0.01"} 10
lat_bucket{route="/b",le="0.1"} 10
lat_bucket{route="/b",le="+Inf"} 10
lat_sum{route="/b"} 0.005
lat_count{route="/b"} 10
"#;

    #[test]
    fn samples_labels_and_sums() {
        let s = parse(TEXT);
        assert_eq!(sum(&s, "x_total", &[("result", "match")]), Some(7.0));
        assert_eq!(sum(&s, "x_total", &[("result", "mis\"match")]), Some(1.0));
        assert_eq!(sum(&s, "process_cpu_seconds_total", &[]), Some(1.5));
        assert_eq!(sum(&s, "nothing", &[]), None);
    }

    #[test]
    fn histograms_give_exact_means_and_interpolated_quantiles() {
        let s = parse(TEXT);
        let a = histogram(&s, "lat", &[("route", "/a")]);
        assert_eq!(a.count, 100.0);
        assert!((a.mean() - 0.01).abs() < 1e-12);
        // Half the samples lie at or below 10 ms; the median is its bound.
        assert!((a.quantile(0.5) - 0.01).abs() < 1e-12);
        assert!((a.quantile(0.99) - 0.0982).abs() < 1e-9);
        let both = histogram(&s, "lat", &[]);
        assert_eq!(both.count, 110.0);
        let later = histogram(
            &parse(&TEXT.replace("} 100", "} 150")),
            "lat",
            &[("route", "/a")],
        );
        assert_eq!(later.since(&a).buckets.last().unwrap().1, 50.0);
        assert_eq!(PromHistogram::default().quantile(0.5), 0.0);
    }
}
