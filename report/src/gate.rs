//! The regression gate: budgets a run must keep, and the verdict.
//!
//! Per scenario, every candidate is judged against the baseline of the same
//! run (Rust against Go; `go-b` against `go-a` in A/A mode), and with an older
//! results file every backend is judged against itself in that file. Latency
//! checks use [`stats`](crate::stats): a budget is broken only when the whole
//! confidence interval of the ratio lies above it, so sampling noise passes
//! and a real regression fails. CPU and RSS are one measurement per run, with
//! no interval to compute: they are compared directly, and the table says so.
//!
//! A check is `PASS` or `FAIL` against its budget, `INFO` when it has no
//! budget (shown for the reader), and `SKIP` when the run lacks what it needs
//! (no proxy comparison in direct mode, a backend missing from the older file).

use std::fmt::Write as _;

use crate::results::{BackendResult, RunResults, ScenarioResult};
use crate::stats::{self, Empirical, Settings};

/// The budgets a run is held to. `None` disables a check (it is then shown
/// as `INFO` where there is something to show).
#[derive(Debug, Clone, PartialEq)]
pub struct Budgets {
    /// Largest candidate/baseline p99 ratio.
    pub max_p99_ratio: Option<f64>,
    /// Largest candidate/baseline p50 ratio (judged by a Mann-Whitney test
    /// against the baseline scaled by this factor).
    pub max_p50_ratio: Option<f64>,
    /// Largest candidate/baseline peak-RSS ratio.
    pub max_rss_ratio: Option<f64>,
    /// Largest candidate/baseline ratio of CPU-seconds per request.
    pub max_cpu_ratio: Option<f64>,
    /// Largest share of compared pairs that mismatch (also applied to the
    /// Kafka join: bad records over all records).
    pub max_mismatch_rate: Option<f64>,
    /// Largest share of a backend's requests that fail.
    pub max_error_rate: Option<f64>,
    /// Largest share of a backend's schedule slots sent late: past it the
    /// load generator did not hold the open-model schedule, so the latency
    /// figures are the generator's stalls as much as the backend's.
    pub max_late_rate: Option<f64>,
    /// Largest growth against the older file, as a fraction (0.10 = 10 %),
    /// for p99, CPU per request and peak RSS of every backend.
    pub max_regression: Option<f64>,
    /// Bootstrap settings, confidence level included.
    pub stats: Settings,
    /// The harness's own p99 noise per scenario, from an A/A run (see
    /// [`noise_factors`]): the p99 budget of a scenario found here is
    /// multiplied by its factor (at least 1).
    pub p99_noise: std::collections::BTreeMap<String, f64>,
    /// Smallest candidate/baseline capacity ratio (runs with a capacity
    /// search or ladder; others SKIP).
    pub min_capacity_ratio: Option<f64>,
    /// The A/A runs' p50 spread per scenario (see [`calibrate`]): the p50
    /// budget is multiplied by it.
    pub p50_noise: std::collections::BTreeMap<String, f64>,
    /// The A/A runs' capacity-ratio spread per scenario: the smallest
    /// capacity ratio is divided by it.
    pub capacity_noise: std::collections::BTreeMap<String, f64>,
    /// Budgets given on the command line: they win over those a scenario
    /// carries from its experiment file ([`ScenarioResult::budgets`]), which
    /// win over the fields above.
    pub overrides: crate::BudgetSpec,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            max_p99_ratio: Some(1.5),
            max_p50_ratio: None,
            max_rss_ratio: Some(1.0),
            max_cpu_ratio: None,
            max_mismatch_rate: Some(0.001),
            max_error_rate: None,
            max_late_rate: Some(0.10),
            max_regression: Some(0.10),
            stats: Settings::default(),
            p99_noise: std::collections::BTreeMap::new(),
            min_capacity_ratio: None,
            p50_noise: std::collections::BTreeMap::new(),
            capacity_noise: std::collections::BTreeMap::new(),
            overrides: crate::BudgetSpec::default(),
        }
    }
}

impl Budgets {
    /// These budgets with an experiment's [`BudgetSpec`] laid over them:
    /// each budget the spec sets (a number, or `"off"`) replaces this one.
    pub fn with_spec(&self, spec: &crate::BudgetSpec) -> Self {
        let pick = |own: Option<f64>, spec: Option<Option<f64>>| spec.unwrap_or(own);
        Self {
            max_p99_ratio: pick(self.max_p99_ratio, spec.max_p99_ratio),
            max_p50_ratio: pick(self.max_p50_ratio, spec.max_p50_ratio),
            max_rss_ratio: pick(self.max_rss_ratio, spec.max_rss_ratio),
            max_cpu_ratio: pick(self.max_cpu_ratio, spec.max_cpu_ratio),
            max_mismatch_rate: pick(self.max_mismatch_rate, spec.max_mismatch_rate),
            max_error_rate: pick(self.max_error_rate, spec.max_error_rate),
            max_late_rate: pick(self.max_late_rate, spec.max_late_rate),
            max_regression: pick(self.max_regression, spec.max_regression),
            min_capacity_ratio: pick(self.min_capacity_ratio, spec.min_capacity_ratio),
            ..self.clone()
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within budget.
    Pass,
    /// Budget broken.
    Fail,
    /// Not evaluated: the run lacks the data.
    Skip,
    /// No budget set; shown for information.
    Info,
}

impl Verdict {
    /// `PASS`, `FAIL`, `SKIP` or `INFO`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
            Verdict::Info => "INFO",
        }
    }
}

/// How a check's numbers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// A ratio, shown as `1.23x`.
    Ratio,
    /// A share, shown as a percentage.
    Rate,
    /// A probability, shown as a plain number.
    Probability,
    /// A ratio whose budget is a floor (`>= 0.90x`): capacity.
    Floor,
}

/// One line of the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The scenario.
    pub scenario: String,
    /// What is checked (`p99 ratio`, `mismatch rate`, `p99 regression`...).
    pub name: String,
    /// Which backends (`rust/go`, `rust now/before`, `proxy`).
    pub subject: String,
    /// The observed value, when there is one.
    pub observed: Option<f64>,
    /// The confidence interval of `observed`, for statistical checks.
    pub interval: Option<(f64, f64)>,
    /// The budget, when one is set.
    pub budget: Option<f64>,
    /// How the numbers read.
    pub measure: Measure,
    /// The outcome.
    pub verdict: Verdict,
    /// How it was judged, or why it was skipped.
    pub note: String,
}

/// The whole verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct GateReport {
    /// Every check, in scenario order.
    pub checks: Vec<Check>,
    /// The confidence level of the intervals.
    pub confidence: f64,
}

impl GateReport {
    /// Checks that broke their budget.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.verdict == Verdict::Fail)
    }

    /// True when no budget was broken.
    pub fn passed(&self) -> bool {
        self.failures().next().is_none()
    }

    /// The verdict as an aligned text table with a summary line.
    pub fn table(&self) -> String {
        let ci_header = format!("{:.0}% CI", self.confidence * 100.0);
        let header = [
            "scenario", "check", "subject", "observed", &ci_header, "budget", "verdict", "note",
        ];
        let rows: Vec<[String; 8]> = self
            .checks
            .iter()
            .map(|c| {
                [
                    c.scenario.clone(),
                    c.name.clone(),
                    c.subject.clone(),
                    c.observed.map_or("-".into(), |v| fmt(c.measure, v)),
                    c.interval.map_or("-".into(), |(lo, hi)| {
                        format!("{} .. {}", fmt(c.measure, lo), fmt(c.measure, hi))
                    }),
                    c.budget.map_or("-".into(), |b| {
                        let op = if c.measure == Measure::Floor {
                            ">="
                        } else {
                            "<="
                        };
                        format!("{op} {}", fmt(c.measure, b))
                    }),
                    c.verdict.as_str().into(),
                    c.note.clone(),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[&str]| {
            let mut l = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(cell);
                } else {
                    let _ = write!(l, "{cell:<w$}  ");
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(&header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&rule.iter().map(String::as_str).collect::<Vec<_>>());
        for row in &rows {
            line(&row.iter().map(String::as_str).collect::<Vec<_>>());
        }
        let count = |v: Verdict| self.checks.iter().filter(|c| c.verdict == v).count();
        let _ = writeln!(
            out,
            "\ngate: {} ({} checks: {} passed, {} failed, {} skipped, {} info)",
            if self.passed() { "PASS" } else { "FAIL" },
            self.checks.len(),
            count(Verdict::Pass),
            count(Verdict::Fail),
            count(Verdict::Skip),
            count(Verdict::Info),
        );
        out
    }
}

fn fmt(measure: Measure, v: f64) -> String {
    match measure {
        Measure::Ratio | Measure::Floor => format!("{v:.3}x"),
        Measure::Rate => format!("{:.4}%", v * 100.0),
        Measure::Probability => format!("{v:.3}"),
    }
}

/// Why a run cannot be judged at all (exit code 2 in the CLI).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The results file has no scenario.
    #[error("the results hold no scenario")]
    NoScenarios,
    /// A scenario lacks a baseline backend.
    #[error("scenario `{scenario}`: no backend with role \"baseline\"")]
    NoBaseline {
        /// The scenario.
        scenario: String,
    },
    /// A scenario lacks a candidate backend.
    #[error("scenario `{scenario}`: no backend with role \"candidate\"")]
    NoCandidate {
        /// The scenario.
        scenario: String,
    },
    /// A histogram does not decode.
    #[error("scenario `{scenario}`, backend `{backend}`: field `histogram`: {source}")]
    Histogram {
        /// The scenario.
        scenario: String,
        /// The backend.
        backend: String,
        /// The decoding error.
        source: crate::Error,
    },
    /// The older file shares no scenario with the current one.
    #[error("the baseline file shares no scenario with the results (it has: {older})")]
    NothingInCommon {
        /// The older file's scenarios.
        older: String,
    },
    /// A budget or setting is out of range.
    #[error("{name}: {value} is out of range ({expected})")]
    Setting {
        /// The option.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What is allowed.
        expected: &'static str,
    },
}

/// How far apart two identical backends' p99s came out in an A/A run
/// (`parallax run --aa`), per scenario: the far end of the bootstrap
/// interval of the go-b/go-a p99 ratio, folded above 1 (a ratio of 0.5 is
/// as much noise as 2). A bootstrap interval treats requests as
/// independent, which run-to-run effects (a co-located backend's CPU, the
/// shadow's later start, drift between turns) are not; an A/A run on the
/// same machine measures exactly those, and widening the budget by them
/// keeps the gate from failing a build on the harness's own noise.
pub fn noise_factors(
    aa: &RunResults,
    settings: &Settings,
) -> Result<std::collections::BTreeMap<String, f64>, GateError> {
    let mut factors = std::collections::BTreeMap::new();
    for s in &aa.scenarios {
        let (Some(base), Some(cand)) = (s.baseline(), s.candidates().next()) else {
            continue;
        };
        let decode = |b: &BackendResult| {
            b.decode_histogram()
                .map(|h| Empirical::new(&h))
                .map_err(|source| GateError::Histogram {
                    scenario: s.scenario.clone(),
                    backend: b.name.clone(),
                    source,
                })
        };
        let (b, c) = (decode(base)?, decode(cand)?);
        if let Some(iv) = stats::quantile_ratio(&b, &c, 0.99, settings) {
            let far = iv.high.max(1.0 / iv.low.max(f64::MIN_POSITIVE));
            factors.insert(s.scenario.clone(), far.max(1.0));
        }
    }
    Ok(factors)
}

/// Widens `budgets` by the noise of A/A runs (`parallax run --aa`, as
/// many as given): the p99 budget by the largest [`noise_factors`] of any
/// run, the p50 budget by the largest departure from 1 of their p50
/// ratios, and the capacity floor is lowered by the largest departure of
/// their capacity ratios. One A/A run says little about the next; several
/// give the spread the gate should not fail a build for.
pub fn calibrate(budgets: &mut Budgets, aa_runs: &[RunResults]) -> Result<(), GateError> {
    for aa in aa_runs {
        for (scenario, f) in noise_factors(aa, &budgets.stats)? {
            let e = budgets.p99_noise.entry(scenario).or_insert(1.0);
            *e = e.max(f);
        }
    }
    let runs: Vec<(String, &RunResults)> = aa_runs.iter().map(|r| (String::new(), r)).collect();
    let names: std::collections::BTreeSet<&str> = aa_runs
        .iter()
        .flat_map(|r| r.scenarios.iter().map(|s| s.scenario.as_str()))
        .collect();
    for name in names {
        if let Some(n) = crate::Noise::from_runs(name, &runs) {
            budgets
                .p50_noise
                .insert(name.to_owned(), crate::Noise::spread(&n.p50_ratio));
            if !n.capacity_ratio.is_empty() {
                budgets
                    .capacity_noise
                    .insert(name.to_owned(), crate::Noise::spread(&n.capacity_ratio));
            }
        }
    }
    Ok(())
}

/// Judges `current` (and, with `older`, its change since then) against `budgets`.
pub fn evaluate(
    current: &RunResults,
    older: Option<&RunResults>,
    budgets: &Budgets,
) -> Result<GateReport, GateError> {
    validate(budgets)?;
    if current.scenarios.is_empty() {
        return Err(GateError::NoScenarios);
    }
    if let Some(older) = older {
        if !current
            .scenarios
            .iter()
            .any(|s| older.scenario(&s.scenario).is_some())
        {
            let names: Vec<&str> = older
                .scenarios
                .iter()
                .map(|s| s.scenario.as_str())
                .collect();
            return Err(GateError::NothingInCommon {
                older: if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                },
            });
        }
    }
    let mut checks = Vec::new();
    for scenario in &current.scenarios {
        let own;
        let budgets = match &scenario.budgets {
            Some(spec) => {
                own = budgets.with_spec(spec).with_spec(&budgets.overrides);
                validate(&own)?;
                &own
            }
            None => budgets,
        };
        let judge = Judge {
            scenario,
            budgets,
            checks: &mut checks,
        };
        judge.scenario(
            older.and_then(|o| o.scenario(&scenario.scenario)),
            older.is_some(),
        )?;
    }
    Ok(GateReport {
        checks,
        confidence: budgets.stats.confidence,
    })
}

fn validate(b: &Budgets) -> Result<(), GateError> {
    let positive = [
        ("--min-capacity-ratio", b.min_capacity_ratio),
        ("--max-p99-ratio", b.max_p99_ratio),
        ("--max-p50-ratio", b.max_p50_ratio),
        ("--max-rss-ratio", b.max_rss_ratio),
        ("--max-cpu-ratio", b.max_cpu_ratio),
    ];
    for (name, v) in positive {
        if let Some(v) = v.filter(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(GateError::Setting {
                name,
                value: v,
                expected: "a ratio above 0",
            });
        }
    }
    let shares = [
        ("--max-mismatch-rate", b.max_mismatch_rate),
        ("--max-error-rate", b.max_error_rate),
        ("--max-late-rate", b.max_late_rate),
    ];
    for (name, v) in shares {
        if let Some(v) = v.filter(|v| !(0.0..=1.0).contains(v)) {
            return Err(GateError::Setting {
                name,
                value: v,
                expected: "a share from 0 to 1",
            });
        }
    }
    if let Some(v) = b.max_regression.filter(|v| !(v.is_finite() && *v >= 0.0)) {
        return Err(GateError::Setting {
            name: "--max-regression",
            value: v,
            expected: "a percentage of 0 or more",
        });
    }
    let c = b.stats.confidence;
    if !(c > 0.0 && c < 1.0) {
        return Err(GateError::Setting {
            name: "--confidence",
            value: c,
            expected: "strictly between 0 and 1",
        });
    }
    Ok(())
}

struct Judge<'a> {
    scenario: &'a ScenarioResult,
    budgets: &'a Budgets,
    checks: &'a mut Vec<Check>,
}

impl Judge<'_> {
    fn scenario(
        mut self,
        older: Option<&ScenarioResult>,
        have_older: bool,
    ) -> Result<(), GateError> {
        let s = self.scenario;
        let base = s.baseline().ok_or_else(|| GateError::NoBaseline {
            scenario: s.scenario.clone(),
        })?;
        if s.candidates().next().is_none() {
            return Err(GateError::NoCandidate {
                scenario: s.scenario.clone(),
            });
        }
        let base_hist = self.empirical(base)?;
        for cand in s.candidates() {
            let cand_hist = self.empirical(cand)?;
            self.latency(base, &base_hist, cand, &cand_hist);
            self.resources(base, cand);
            self.capacity(base, cand);
        }
        if let Some(budget) = self.budgets.max_error_rate {
            for b in &s.backends {
                self.error_rate(b, budget);
            }
        }
        // A capacity search is late on purpose at the rates a backend did
        // not hold; its rows are judged by the capacity check.
        if let (Some(budget), None) = (self.budgets.max_late_rate, &s.capacity) {
            for b in &s.backends {
                self.late_rate(b, budget);
            }
        }
        self.mismatches();
        if have_older {
            match older {
                Some(older) => {
                    for b in &s.backends {
                        self.regression(b, older)?;
                    }
                }
                None => self.push(
                    "regression",
                    "all",
                    None,
                    None,
                    None,
                    Measure::Ratio,
                    Verdict::Skip,
                    "scenario absent from the baseline file".into(),
                ),
            }
        }
        Ok(())
    }

    fn empirical(&self, b: &BackendResult) -> Result<Empirical, GateError> {
        let h = b
            .decode_histogram()
            .map_err(|source| GateError::Histogram {
                scenario: self.scenario.scenario.clone(),
                backend: b.name.clone(),
                source,
            })?;
        Ok(Empirical::new(&h))
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        name: &str,
        subject: &str,
        observed: Option<f64>,
        interval: Option<(f64, f64)>,
        budget: Option<f64>,
        measure: Measure,
        verdict: Verdict,
        note: String,
    ) {
        self.checks.push(Check {
            scenario: self.scenario.scenario.clone(),
            name: name.into(),
            subject: subject.into(),
            observed,
            interval,
            budget,
            measure,
            verdict,
            note,
        });
    }

    /// Settings with a seed of its own per check, so adding a check or a
    /// scenario does not move the other intervals.
    fn settings(&self, check: &str, subject: &str) -> Settings {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in [&self.scenario.scenario, check, subject]
            .iter()
            .flat_map(|s| s.bytes().chain([0]))
        {
            h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        Settings {
            seed: self.budgets.stats.seed ^ h,
            ..self.budgets.stats
        }
    }

    /// One-sided significance level matching the two-sided interval.
    fn alpha(&self) -> f64 {
        (1.0 - self.budgets.stats.confidence) / 2.0
    }

    /// A p-quantile ratio check: fail only when the interval's low end is
    /// above the budget.
    fn quantile_check(
        &mut self,
        name: &str,
        subject: &str,
        q: f64,
        base: &Empirical,
        cand: &Empirical,
        budget: Option<f64>,
    ) {
        if let Some(why) = empty_side(base, cand) {
            self.push(
                name,
                subject,
                None,
                None,
                budget,
                Measure::Ratio,
                Verdict::Fail,
                why,
            );
            return;
        }
        let settings = self.settings(name, subject);
        let iv = stats::quantile_ratio(base, cand, q, &settings).expect("both sides have samples");
        let verdict = match budget {
            None => Verdict::Info,
            Some(b) if iv.low > b => Verdict::Fail,
            Some(_) => Verdict::Pass,
        };
        let mut note = format!(
            "bootstrap, n={}/{} (resampled at most {})",
            cand.count(),
            base.count(),
            settings.resample_cap
        );
        if verdict == Verdict::Pass && budget.is_some_and(|b| iv.estimate > b) {
            note.push_str("; above budget but within noise");
        }
        self.push(
            name,
            subject,
            Some(iv.estimate),
            Some((iv.low, iv.high)),
            budget,
            Measure::Ratio,
            verdict,
            note,
        );
    }

    fn latency(
        &mut self,
        base: &BackendResult,
        base_hist: &Empirical,
        cand: &BackendResult,
        cand_hist: &Empirical,
    ) {
        let subject = format!("{}/{}", cand.name, base.name);
        let b = self.budgets.clone();
        let noise = self.noise(|n| n.p99_ratio.as_slice(), &b.p99_noise);
        let checks_before = self.checks.len();
        self.quantile_check(
            "p99 ratio",
            &subject,
            0.99,
            base_hist,
            cand_hist,
            b.max_p99_ratio.map(|budget| budget * noise.unwrap_or(1.0)),
        );
        if let (Some(factor), Some(check)) = (noise, self.checks.get_mut(checks_before)) {
            check.note.push_str(&format!(
                "; budget widened {factor:.2}x by the A/A run's noise"
            ));
        }

        // p50: the interval is shown; the verdict comes from a one-sided
        // Mann-Whitney test of "candidate slower than budget x baseline",
        // which uses the whole distribution rather than one order statistic.
        if let Some(why) = empty_side(base_hist, cand_hist) {
            self.push(
                "p50 ratio",
                &subject,
                None,
                None,
                b.max_p50_ratio,
                Measure::Ratio,
                Verdict::Fail,
                why,
            );
            return;
        }
        let settings = self.settings("p50 ratio", &subject);
        let iv = stats::quantile_ratio(base_hist, cand_hist, 0.5, &settings)
            .expect("both sides have samples");
        let p50_noise = self.noise(|n| n.p50_ratio.as_slice(), &b.p50_noise);
        let p50_budget = b
            .max_p50_ratio
            .map(|budget| budget * p50_noise.unwrap_or(1.0));
        let (verdict, mut note) = match p50_budget {
            None => (Verdict::Info, "bootstrap".to_owned()),
            Some(budget) => {
                let mw = stats::mann_whitney(base_hist, cand_hist, budget, settings.resample_cap)
                    .expect("both sides have samples");
                let fail = mw.p_slower < self.alpha() && iv.estimate > budget;
                (
                    if fail { Verdict::Fail } else { Verdict::Pass },
                    format!(
                        "Mann-Whitney vs {budget}x baseline: z={:.2}, one-sided p={:.2e}",
                        mw.z, mw.p_slower
                    ),
                )
            }
        };
        if let (Some(f), Some(_)) = (p50_noise, p50_budget) {
            note.push_str(&format!(
                "; budget widened {f:.2}x by the A/A runs' p50 spread"
            ));
        }
        self.push(
            "p50 ratio",
            &subject,
            Some(iv.estimate),
            Some((iv.low, iv.high)),
            p50_budget,
            Measure::Ratio,
            verdict,
            note,
        );
        let mw = stats::mann_whitney(base_hist, cand_hist, 1.0, settings.resample_cap)
            .expect("both sides have samples");
        self.push(
            "P(slower) (Mann-Whitney)",
            &subject,
            Some(mw.prob_slower),
            None,
            None,
            Measure::Probability,
            Verdict::Info,
            format!(
                "0.5 = no shift; z={:.2}, two-sided p={:.2e}",
                mw.z, mw.p_two_sided
            ),
        );
    }

    /// The A/A spread for this scenario: from the calibration runs given
    /// to the gate, else from the A/A figures stored with the scenario
    /// (`parallax run --noise`); `None` when neither has it.
    fn noise(
        &self,
        pick: impl Fn(&crate::Noise) -> &[f64],
        given: &std::collections::BTreeMap<String, f64>,
    ) -> Option<f64> {
        given.get(&self.scenario.scenario).copied().or_else(|| {
            self.scenario
                .noise
                .as_ref()
                .map(pick)
                .filter(|r| !r.is_empty())
                .map(crate::Noise::spread)
        })
    }

    /// Capacity at the SLO: candidate / baseline, against a floor.
    fn capacity(&mut self, base: &BackendResult, cand: &BackendResult) {
        let subject = format!("{}/{}", cand.name, base.name);
        let floor = self.budgets.min_capacity_ratio;
        let Some(cap) = self.scenario.capacity.clone() else {
            if floor.is_some() {
                self.push(
                    "capacity ratio",
                    &subject,
                    None,
                    None,
                    floor,
                    Measure::Floor,
                    Verdict::Skip,
                    "no capacity measured (run with --find-capacity or --rate START..ENDxFACTOR)"
                        .into(),
                );
            }
            return;
        };
        let noise = self.noise(
            |n| n.capacity_ratio.as_slice(),
            &self.budgets.capacity_noise,
        );
        let floor = floor.map(|f| f / noise.unwrap_or(1.0));
        let (b, c) = (cap.backend(&base.name), cap.backend(&cand.name));
        let (Some(b), Some(c)) = (b, c) else {
            self.push(
                "capacity ratio",
                &subject,
                None,
                None,
                floor,
                Measure::Floor,
                Verdict::Skip,
                "a backend is missing from the capacity results".into(),
            );
            return;
        };
        let describe = |x: &crate::BackendCapacity| match x.capacity_per_sec {
            Some(v) if x.at_least => format!(">= {v}/s"),
            Some(v) => format!("{v}/s"),
            None => "none held".into(),
        };
        let mut note = format!(
            "{} at {}: {} / {}",
            cap.method,
            cap.slo,
            describe(c),
            describe(b)
        );
        if let Some(f) = noise.filter(|_| floor.is_some()) {
            note.push_str(&format!(
                "; floor lowered {f:.2}x by the A/A capacity spread"
            ));
        }
        let (observed, verdict) = match (b.capacity_per_sec, c.capacity_per_sec) {
            (Some(bv), Some(cv)) if bv > 0.0 => {
                let ratio = cv / bv;
                let verdict = match floor {
                    None => Verdict::Info,
                    // A candidate that held the top of the ladder may be
                    // faster than measured: it passes what it showed.
                    Some(f) if ratio < f && !c.at_least => Verdict::Fail,
                    Some(_) => Verdict::Pass,
                };
                if b.at_least || c.at_least {
                    note.push_str("; a backend held the ladder's top, so the ratio is a bound");
                }
                (Some(ratio), verdict)
            }
            // The baseline held some rate, the candidate none: as bad as it gets.
            (Some(_), None) => (
                Some(0.0),
                if floor.is_some() {
                    Verdict::Fail
                } else {
                    Verdict::Info
                },
            ),
            _ => (None, Verdict::Skip),
        };
        self.push(
            "capacity ratio",
            &subject,
            observed,
            None,
            floor,
            Measure::Floor,
            verdict,
            note,
        );
    }

    fn resources(&mut self, base: &BackendResult, cand: &BackendResult) {
        let subject = format!("{}/{}", cand.name, base.name);
        let b = self.budgets.clone();
        match (cand.peak_rss_bytes, base.peak_rss_bytes) {
            (Some(c), Some(bb)) => self.direct_ratio(
                "RSS ratio",
                &subject,
                c as f64,
                bb as f64,
                b.max_rss_ratio,
                format!(
                    "single measurement, compared directly ({} / {})",
                    mib(c),
                    mib(bb)
                ),
            ),
            _ => self.not_measured("RSS ratio", &subject, b.max_rss_ratio, "RSS"),
        }
        match (cpu_per_request(cand), cpu_per_request(base)) {
            (Some(c), Some(bb)) => self.direct_ratio(
                "CPU/request ratio",
                &subject,
                c,
                bb,
                b.max_cpu_ratio,
                format!(
                    "single measurement, compared directly ({:.3} s / {:.3} s)",
                    cand.cpu_seconds.unwrap_or_default(),
                    base.cpu_seconds.unwrap_or_default()
                ),
            ),
            _ => self.not_measured("CPU/request ratio", &subject, b.max_cpu_ratio, "CPU"),
        }
    }

    /// A resource check that cannot be made: a backend's CPU or RSS was not
    /// measured (a backend given by URL without a pid or `/metrics`).
    fn not_measured(&mut self, name: &str, subject: &str, budget: Option<f64>, what: &str) {
        self.push(
            name,
            subject,
            None,
            None,
            budget,
            Measure::Ratio,
            Verdict::Skip,
            format!("{what} not measured on one side (no pid and no process metrics)"),
        );
    }

    fn direct_ratio(
        &mut self,
        name: &str,
        subject: &str,
        num: f64,
        den: f64,
        budget: Option<f64>,
        note: String,
    ) {
        if !(den > 0.0 && num.is_finite()) {
            self.push(
                name,
                subject,
                None,
                None,
                budget,
                Measure::Ratio,
                Verdict::Skip,
                "not measured (zero in the denominator)".into(),
            );
            return;
        }
        let ratio = num / den;
        let verdict = match budget {
            None => Verdict::Info,
            Some(b) if ratio > b => Verdict::Fail,
            Some(_) => Verdict::Pass,
        };
        self.push(
            name,
            subject,
            Some(ratio),
            None,
            budget,
            Measure::Ratio,
            verdict,
            note,
        );
    }

    fn error_rate(&mut self, b: &BackendResult, budget: f64) {
        if b.requests == 0 {
            self.push(
                "error rate",
                &b.name,
                None,
                None,
                Some(budget),
                Measure::Rate,
                Verdict::Fail,
                "no requests completed".into(),
            );
            return;
        }
        let rate = b.errors as f64 / b.requests as f64;
        let verdict = if rate > budget {
            Verdict::Fail
        } else {
            Verdict::Pass
        };
        self.push(
            "error rate",
            &b.name,
            Some(rate),
            None,
            Some(budget),
            Measure::Rate,
            verdict,
            format!("{} of {}", b.errors, b.requests),
        );
    }

    /// Whether the schedule was held: an open-model run whose generator
    /// fell behind measured its own stalls, so a "pass" on its latency
    /// would be a pass on bad data.
    fn late_rate(&mut self, b: &BackendResult, budget: f64) {
        if b.requests == 0 {
            return;
        }
        let rate = b.late as f64 / b.requests as f64;
        let (verdict, note) = if rate > budget {
            (
                Verdict::Fail,
                format!(
                    "{} of {} slots sent late: the load did not hold its schedule, so the latency figures are not the backend's alone (rerun on a quieter machine or at a lower rate; --max-late-rate off to accept)",
                    b.late, b.requests
                ),
            )
        } else {
            (
                Verdict::Pass,
                format!("{} of {} slots sent late", b.late, b.requests),
            )
        };
        self.push(
            "late slots",
            &b.name,
            Some(rate),
            None,
            Some(budget),
            Measure::Rate,
            verdict,
            note,
        );
    }

    fn mismatches(&mut self) {
        let budget = self.budgets.max_mismatch_rate;
        let Some(cmp) = self.scenario.comparison.clone() else {
            self.push(
                "mismatch rate",
                "proxy",
                None,
                None,
                budget,
                Measure::Rate,
                Verdict::Skip,
                "no proxy comparison in this run".into(),
            );
            return;
        };
        let rate_check = |observed: u64, total: u64| match (total, budget) {
            (0, _) => (None, Verdict::Skip),
            (t, None) => (Some(observed as f64 / t as f64), Verdict::Info),
            (t, Some(b)) => {
                let r = observed as f64 / t as f64;
                (Some(r), if r > b { Verdict::Fail } else { Verdict::Pass })
            }
        };
        let (rate, mut verdict) = rate_check(cmp.mismatched, cmp.compared);
        let mut note = if cmp.classes.is_empty() {
            format!("{} of {} compared", cmp.mismatched, cmp.compared)
        } else {
            let classes: Vec<String> = cmp
                .classes
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            format!(
                "{} of {} compared ({})",
                cmp.mismatched,
                cmp.compared,
                classes.join(", ")
            )
        };
        if !cmp.differences.is_empty() {
            // Where: the most frequent paths, so a failing gate says what to fix.
            let top: Vec<String> = cmp
                .differences
                .iter()
                .take(3)
                .map(|d| format!("{} {} {} x{}", d.route, d.path, d.kind, d.count))
                .collect();
            let more = cmp.differences.len().saturating_sub(3);
            let _ = write!(note, "; {}", top.join(", "));
            if more > 0 {
                let _ = write!(note, " and {more} more paths");
            }
        }
        if cmp.compared == 0 {
            // A shadow that never answers is broken, not "not applicable".
            if cmp.dropped > 0 {
                verdict = Verdict::Fail;
                note = format!("nothing compared, {} dropped", cmp.dropped);
            } else {
                note = "nothing compared".into();
            }
        }
        self.push(
            "mismatch rate",
            "proxy",
            rate,
            None,
            budget,
            Measure::Rate,
            verdict,
            note,
        );
        if let Some(k) = cmp.kafka {
            let (rate, verdict) = rate_check(k.bad(), k.total());
            self.push(
                "kafka mismatch rate",
                "proxy",
                rate,
                None,
                budget,
                Measure::Rate,
                verdict,
                format!(
                    "{} matched, {} missing in shadow, {} extra, {} different",
                    k.matched, k.missing_in_shadow, k.extra_in_shadow, k.different
                ),
            );
        }
    }

    fn regression(&mut self, now: &BackendResult, older: &ScenarioResult) -> Result<(), GateError> {
        let subject = format!("{} now/before", now.name);
        let Some(before) = older.backend(&now.name) else {
            self.push(
                "regression",
                &subject,
                None,
                None,
                None,
                Measure::Ratio,
                Verdict::Skip,
                "backend absent from the baseline file".into(),
            );
            return Ok(());
        };
        let budget = self.budgets.max_regression.map(|r| 1.0 + r);
        let now_hist = self.empirical(now)?;
        let before_hist = self.empirical(before)?;
        self.quantile_check(
            "p99 regression",
            &subject,
            0.99,
            &before_hist,
            &now_hist,
            budget,
        );
        match (cpu_per_request(now), cpu_per_request(before)) {
            (Some(n), Some(b)) => self.direct_ratio(
                "CPU/request regression",
                &subject,
                n,
                b,
                budget,
                "single measurement, compared directly".into(),
            ),
            _ => self.not_measured("CPU/request regression", &subject, budget, "CPU"),
        }
        match (now.peak_rss_bytes, before.peak_rss_bytes) {
            (Some(n), Some(b)) => self.direct_ratio(
                "RSS regression",
                &subject,
                n as f64,
                b as f64,
                budget,
                format!(
                    "single measurement, compared directly ({} / {})",
                    mib(n),
                    mib(b)
                ),
            ),
            _ => self.not_measured("RSS regression", &subject, budget, "RSS"),
        }
        Ok(())
    }
}

fn empty_side(base: &Empirical, cand: &Empirical) -> Option<String> {
    match (base.count(), cand.count()) {
        (0, 0) => Some("no latency samples on either side".into()),
        (0, _) => Some("baseline recorded no latency samples".into()),
        (_, 0) => Some("candidate recorded no latency samples".into()),
        _ => None,
    }
}

/// CPU-seconds per request, so runs or backends that served different
/// numbers of requests compare fairly; raw CPU-seconds when none completed.
fn cpu_per_request(b: &BackendResult) -> Option<f64> {
    let cpu = b.cpu_seconds?;
    Some(if b.requests > 0 {
        cpu / b.requests as f64
    } else {
        cpu
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Parses a regression budget: `10%` or `10` mean ten percent.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let number = t.strip_suffix('%').unwrap_or(t).trim();
    let v: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a percentage (e.g. 10%)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("`{text}`: a percentage of 0 or more"));
    }
    Ok(v / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_parse_with_or_without_the_sign() {
        assert_eq!(parse_percent("10%"), Ok(0.10));
        assert_eq!(parse_percent("2.5"), Ok(0.025));
        assert!(parse_percent("ten").is_err());
        assert!(parse_percent("-5%").is_err());
    }
}
