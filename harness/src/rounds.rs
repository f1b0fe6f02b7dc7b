//! Rounds a bench ran itself (one backend alone per round, A B B A),
//! folded into the one results model: one [`BackendResult`] per backend,
//! so a `parallax bench` writes the same `results.json`, table and
//! `report.html` as `parallax run`, and `parallax gate` judges it.
//!
//! Why benches do not all go through [`crate::runner`]: some drive load
//! the runner's generator cannot (`bench cache` at 50,000 requests/s on
//! its own paced connections, past goose's ceiling on a small machine),
//! or measure between phases the runner has no hook for (`bench
//! cache-churn` reads RSS and the cache's own gauges after the fill and
//! after the churn; `bench fanout` holds idle connections at
//! checkpoints). What they share with the runner is the output, which is
//! what this module makes one.
//!
//! Folding: a backend's rounds are added histogram to histogram (so its
//! percentiles are over every measured request, not a mean of
//! percentiles); requests, errors, late slots, measured seconds and CPU
//! are summed; peak RSS is the largest. Extra figures of the same name are
//! averaged over the rounds that measured them (a figure such as RSS after
//! the churn is a level, not a count), and each round's p99 is kept as
//! `p99_run_<k>_us`, the spread between a backend's runs being the noise
//! to read its ratios against.

use hdrhistogram::Histogram;
use parallax_loadgen::pacing::latency_histogram;
use parallax_report::{BackendResult, Better, ExtraMetric, Role};

/// One backend alone for one round.
#[derive(Debug, Clone)]
pub struct Round {
    /// The backend's name (`go`, `rust`); rounds with the same name fold
    /// into one backend.
    pub backend: String,
    /// `go`, `rust`, ... as in [`BackendResult::language`].
    pub language: String,
    pub role: Role,
    /// Latency of every measured request, µs from its intended start.
    pub latency: Histogram<u64>,
    /// Length of the measured part of the round.
    pub measured_secs: f64,
    /// Failed requests (transport errors and unexpected answers).
    pub errors: u64,
    /// Slots sent late.
    pub late: u64,
    /// CPU-seconds the backend used in the measured part; `None`: not
    /// measured.
    pub cpu_seconds: Option<f64>,
    /// Its peak RSS in the round; `None`: not measured.
    pub peak_rss_bytes: Option<u64>,
    /// Figures beyond the common ones.
    pub extra: Vec<ExtraMetric>,
}

/// One [`BackendResult`] per backend, in the order each first ran.
/// `accounting` says where CPU and RSS came from.
pub fn fold(rounds: &[Round], accounting: &str) -> Vec<BackendResult> {
    let mut names: Vec<&str> = Vec::new();
    for r in rounds {
        if !names.contains(&r.backend.as_str()) {
            names.push(&r.backend);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let mine: Vec<&Round> = rounds.iter().filter(|r| r.backend == name).collect();
            fold_backend(&mine, accounting)
        })
        .collect()
}

fn fold_backend(rounds: &[&Round], accounting: &str) -> BackendResult {
    let first = rounds[0];
    let mut latency = latency_histogram();
    for r in rounds {
        // Same bounds everywhere (pacing's histogram); a value past them
        // is already clamped by the recorder.
        let _ = latency.add(&r.latency);
    }
    let measured_secs = rounds.iter().map(|r| r.measured_secs).sum();
    let errors = rounds.iter().map(|r| r.errors).sum();
    let late = rounds.iter().map(|r| r.late).sum();
    let mut b = crate::runner::measured(
        &first.backend,
        &first.language,
        first.role,
        &latency,
        measured_secs,
        errors,
        late,
    );
    b.cpu_seconds = rounds.iter().map(|r| r.cpu_seconds).sum::<Option<f64>>();
    b.peak_rss_bytes = rounds.iter().map(|r| r.peak_rss_bytes).max().flatten();
    if rounds.iter().any(|r| r.peak_rss_bytes.is_none()) {
        b.peak_rss_bytes = None;
    }
    b.accounting = Some(accounting.to_owned());
    for r in rounds {
        for m in &r.extra {
            if b.extra.iter().any(|e| e.name == m.name) {
                continue;
            }
            let values: Vec<f64> = rounds
                .iter()
                .filter_map(|r| r.extra.iter().find(|e| e.name == m.name)?.value)
                .collect();
            let mut folded = m.clone();
            folded.value =
                (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
            if rounds.len() > 1 {
                folded.description = format!(
                    "{} (mean of its {} runs)",
                    m.description.trim_end_matches('.'),
                    values.len()
                );
            }
            b.extra.push(folded);
        }
    }
    if rounds.len() > 1 {
        for (k, r) in rounds.iter().enumerate() {
            let p99 = if r.latency.is_empty() {
                f64::NAN
            } else {
                r.latency.value_at_quantile(0.99) as f64
            };
            b.extra.push(ExtraMetric::new(
                format!("p99_run_{}_us", k + 1),
                p99,
                "us",
                Some(Better::Lower),
                format!(
                    "p99 of this backend's run {} of {} alone (A B B A order): the spread between its runs is the noise",
                    k + 1,
                    rounds.len()
                ),
            ));
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(backend: &str, role: Role, latencies: &[u64], rss: u64, extra: f64) -> Round {
        let mut latency = latency_histogram();
        for l in latencies {
            latency.record(*l).unwrap();
        }
        Round {
            backend: backend.into(),
            language: backend.into(),
            role,
            latency,
            measured_secs: 1.0,
            errors: 1,
            late: 2,
            cpu_seconds: Some(0.5),
            peak_rss_bytes: Some(rss),
            extra: vec![ExtraMetric::new(
                "rss_after_churn_bytes",
                extra,
                "bytes",
                Some(Better::Lower),
                "RSS after the churn.",
            )],
        }
    }

    #[test]
    fn rounds_of_one_backend_fold_into_one_result_over_all_their_requests() {
        let rounds = [
            round("go", Role::Baseline, &[100, 100, 100], 10, 100.0),
            round("rust", Role::Candidate, &[50], 5, 10.0),
            round("rust", Role::Candidate, &[60, 70], 7, 20.0),
            round("go", Role::Baseline, &[5_000], 30, 300.0),
        ];
        let b = fold(&rounds, "/proc");
        assert_eq!(b.len(), 2);
        let (go, rust) = (&b[0], &b[1]);
        assert_eq!((go.name.as_str(), go.role), ("go", Role::Baseline));
        assert_eq!(rust.role, Role::Candidate);
        assert_eq!(go.requests, 4, "histograms added, not averaged");
        assert_eq!(go.latency.max_us, go.decode_histogram().unwrap().max());
        assert!(go.latency.max_us >= 4_990);
        assert_eq!((go.errors, go.late), (2, 4));
        assert_eq!(go.achieved_rate_per_sec, 2.0, "4 requests over 2 s");
        assert_eq!(go.cpu_seconds, Some(1.0));
        assert_eq!(go.peak_rss_bytes, Some(30), "the largest of its runs");
        assert_eq!(go.accounting.as_deref(), Some("/proc"));
        let churn = go.extra("rss_after_churn_bytes").unwrap();
        assert_eq!(churn.value, Some(200.0), "a level is averaged");
        assert!(churn.description.contains("mean of its 2 runs"));
        assert!(go.extra("p99_run_1_us").unwrap().value.unwrap() <= 101.0);
        assert!(go.extra("p99_run_2_us").unwrap().value.unwrap() >= 4_990.0);
        assert_eq!(
            rust.extra("rss_after_churn_bytes").unwrap().value,
            Some(15.0)
        );
    }

    #[test]
    fn a_round_without_a_measurement_makes_the_backend_unmeasured() {
        let mut a = round("go", Role::Baseline, &[1], 10, 1.0);
        let b = round("go", Role::Baseline, &[1], 10, 1.0);
        a.cpu_seconds = None;
        a.peak_rss_bytes = None;
        let go = &fold(&[a, b], "/proc")[0];
        assert_eq!(go.cpu_seconds, None, "never half a sum");
        assert_eq!(go.peak_rss_bytes, None);
    }
}
