//! The gate on synthetic runs drawn from seeded distributions.

use parallax_report::gate::{self, Budgets, Check, GateError, GateReport, Verdict};
use parallax_report::synthetic::{self, LogNormal};
use parallax_report::{Comparison, KafkaComparison, Mode, RunResults};

const GO: LogNormal = LogNormal {
    median_us: 800.0,
    sigma: 0.5,
};

fn one_scenario(go: LogNormal, rust: LogNormal, seed: u64, requests: u64) -> RunResults {
    synthetic::run(
        Mode::Direct,
        vec![synthetic::pair("cache", go, rust, seed, requests, 10)],
    )
}

fn judge(run: &RunResults, budgets: &Budgets) -> GateReport {
    gate::evaluate(run, None, budgets).expect("valid input")
}

fn check<'a>(report: &'a GateReport, name: &str) -> &'a Check {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check `{name}` in\n{}", report.table()))
}

fn failed(report: &GateReport) -> Vec<&str> {
    report.failures().map(|c| c.name.as_str()).collect()
}

#[test]
fn identical_distributions_pass_the_default_budgets() {
    let report = judge(&one_scenario(GO, GO, 1, 20_000), &Budgets::default());
    assert!(report.passed(), "{}", report.table());
    let p99 = check(&report, "p99 ratio");
    let (low, high) = p99.interval.unwrap();
    assert!(low < 1.0 && 1.0 < high, "{}", report.table());
}

#[test]
fn a_candidate_with_twice_the_latency_fails_a_p99_budget_of_one_and_a_half() {
    let report = judge(
        &one_scenario(GO, GO.scaled(2.0), 2, 20_000),
        &Budgets::default(),
    );
    assert_eq!(failed(&report), ["p99 ratio"], "{}", report.table());
    let p99 = check(&report, "p99 ratio");
    assert!(p99.interval.unwrap().0 > 1.5, "{}", report.table());
    assert!(report.table().contains("FAIL"));
}

#[test]
fn a_noisy_but_equal_pair_does_not_flap_across_seeds() {
    // A tight budget (1.1) and a long tail: the observed p99 ratio alone
    // crosses the budget for some seeds, the interval never does.
    let budgets = Budgets {
        max_p99_ratio: Some(1.1),
        ..Budgets::default()
    };
    let noisy = LogNormal {
        median_us: 500.0,
        sigma: 0.8,
    };
    let mut naive_failures = 0;
    for seed in 0..40 {
        let report = judge(&one_scenario(noisy, noisy, 1_000 + seed, 10_000), &budgets);
        let p99 = check(&report, "p99 ratio");
        assert_eq!(
            p99.verdict,
            Verdict::Pass,
            "seed {seed}:\n{}",
            report.table()
        );
        if p99.observed.unwrap() > 1.1 {
            naive_failures += 1;
        }
    }
    assert!(
        naive_failures > 0,
        "the pair is not noisy enough to show anything"
    );
}

#[test]
fn small_samples_give_wide_intervals_that_do_not_fail() {
    let budgets = Budgets::default();
    let slower = GO.scaled(1.7);
    let small = judge(&one_scenario(GO, slower, 3, 40), &budgets);
    let p99 = check(&small, "p99 ratio");
    let (low, high) = p99.interval.unwrap();
    assert_eq!(p99.verdict, Verdict::Pass, "{}", small.table());
    assert!(high - low > 1.0, "{}", small.table());
    // The same shift with enough samples is caught.
    let large = judge(&one_scenario(GO, slower, 3, 20_000), &budgets);
    assert_eq!(failed(&large), ["p99 ratio"], "{}", large.table());
}

#[test]
fn the_verdict_is_deterministic_for_a_seed() {
    let run = one_scenario(GO, GO.scaled(1.2), 4, 5_000);
    let budgets = Budgets::default();
    assert_eq!(judge(&run, &budgets), judge(&run, &budgets));
}

#[test]
fn a_median_shift_beyond_the_p50_budget_fails_and_within_it_passes() {
    let run = one_scenario(GO, GO.scaled(1.3), 5, 10_000);
    let tight = Budgets {
        max_p50_ratio: Some(1.2),
        max_p99_ratio: None,
        ..Budgets::default()
    };
    let report = judge(&run, &tight);
    assert_eq!(failed(&report), ["p50 ratio"], "{}", report.table());
    let loose = Budgets {
        max_p50_ratio: Some(1.4),
        ..tight
    };
    assert!(judge(&run, &loose).passed());
    // The Mann-Whitney line reports the shift either way.
    let mw = check(&report, "P(slower) (Mann-Whitney)");
    assert!(mw.observed.unwrap() > 0.6, "{}", report.table());
}

#[test]
fn rss_and_cpu_are_compared_directly() {
    let mut run = one_scenario(GO, GO, 6, 2_000);
    let s = &mut run.scenarios[0];
    s.backends[1].peak_rss_bytes = s.backends[0].peak_rss_bytes.map(|b| b + 1);
    s.backends[1].cpu_seconds = s.backends[0].cpu_seconds.map(|c| c * 1.25);
    let budgets = Budgets {
        max_cpu_ratio: Some(1.2),
        ..Budgets::default()
    };
    let report = judge(&run, &budgets);
    assert_eq!(
        failed(&report),
        ["RSS ratio", "CPU/request ratio"],
        "{}",
        report.table()
    );
    let rss = check(&report, "RSS ratio");
    assert!(rss.interval.is_none() && rss.note.contains("single measurement"));
}

#[test]
fn the_mismatch_rate_budget_counts_proxy_and_kafka_mismatches() {
    let comparison = |mismatched: u64, kafka_different: u64| Comparison {
        compared: 10_000,
        matched: 10_000 - mismatched,
        mismatched,
        noise: 7,
        dropped: 0,
        classes: [("value".to_owned(), mismatched)].into(),
        kafka: Some(KafkaComparison {
            matched: 10_000 - kafka_different,
            missing_in_shadow: 0,
            extra_in_shadow: 0,
            different: kafka_different,
        }),
        ..Default::default()
    };
    let mut run = one_scenario(GO, GO, 7, 2_000);
    run.scenarios[0].comparison = Some(comparison(5, 0));
    let report = judge(&run, &Budgets::default());
    assert!(report.passed(), "{}", report.table());
    assert!(check(&report, "mismatch rate").note.contains("value 5"));

    run.scenarios[0].comparison = Some(comparison(50, 0));
    assert_eq!(failed(&judge(&run, &Budgets::default())), ["mismatch rate"]);

    run.scenarios[0].comparison = Some(comparison(0, 30));
    assert_eq!(
        failed(&judge(&run, &Budgets::default())),
        ["kafka mismatch rate"]
    );
}

#[test]
fn without_a_proxy_comparison_the_mismatch_check_is_skipped() {
    let report = judge(&one_scenario(GO, GO, 8, 2_000), &Budgets::default());
    assert_eq!(check(&report, "mismatch rate").verdict, Verdict::Skip);
}

#[test]
fn a_shadow_that_answered_nothing_fails() {
    let mut run = one_scenario(GO, GO, 9, 2_000);
    run.scenarios[0].comparison = Some(Comparison {
        dropped: 2_000,
        ..Comparison::default()
    });
    assert_eq!(failed(&judge(&run, &Budgets::default())), ["mismatch rate"]);
}

#[test]
fn a_candidate_without_samples_fails() {
    let mut run = one_scenario(GO, GO, 10, 2_000);
    let empty = synthetic::backend("rust", parallax_report::Role::Candidate, GO, 1, 0, 10);
    run.scenarios[0].backends[1] = empty;
    let report = judge(&run, &Budgets::default());
    assert!(failed(&report).contains(&"p99 ratio"), "{}", report.table());
}

#[test]
fn a_p99_regression_against_the_older_file_beyond_the_budget_fails() {
    let before = one_scenario(GO, GO, 11, 20_000);
    let now = one_scenario(GO, GO.scaled(1.3), 12, 20_000);
    let report = gate::evaluate(&now, Some(&before), &Budgets::default()).unwrap();
    let regressions: Vec<(&str, &str, Verdict)> = report
        .checks
        .iter()
        .filter(|c| c.name == "p99 regression")
        .map(|c| (c.subject.as_str(), c.name.as_str(), c.verdict))
        .collect();
    assert_eq!(
        regressions,
        [
            ("go now/before", "p99 regression", Verdict::Pass),
            ("rust now/before", "p99 regression", Verdict::Fail),
        ],
        "{}",
        report.table()
    );
    let loose = Budgets {
        max_regression: Some(0.5),
        max_p99_ratio: Some(2.0),
        ..Budgets::default()
    };
    let report = gate::evaluate(&now, Some(&before), &loose).unwrap();
    assert!(report.passed(), "{}", report.table());
}

#[test]
fn rss_growth_against_the_older_file_beyond_the_budget_fails() {
    let before = one_scenario(GO, GO, 13, 2_000);
    let mut now = before.clone();
    for b in &mut now.scenarios[0].backends {
        b.peak_rss_bytes = b.peak_rss_bytes.map(|r| r * 12 / 10);
    }
    let report = gate::evaluate(&now, Some(&before), &Budgets::default()).unwrap();
    assert_eq!(
        failed(&report),
        ["RSS regression", "RSS regression"],
        "{}",
        report.table()
    );
}

#[test]
fn a_backend_missing_from_the_older_file_is_skipped() {
    let before = one_scenario(GO, GO, 14, 2_000);
    let mut now = before.clone();
    now.scenarios[0].backends[1].name = "rust-new".into();
    let report = gate::evaluate(&now, Some(&before), &Budgets::default()).unwrap();
    let skipped = check(&report, "regression");
    assert_eq!(
        (skipped.subject.as_str(), skipped.verdict),
        ("rust-new now/before", Verdict::Skip)
    );
}

#[test]
fn invalid_input_is_an_error_not_a_verdict() {
    let budgets = Budgets::default();
    let mut run = one_scenario(GO, GO, 15, 100);
    run.scenarios[0].backends.truncate(1);
    assert!(matches!(
        gate::evaluate(&run, None, &budgets),
        Err(GateError::NoCandidate { .. })
    ));

    let mut run = one_scenario(GO, GO, 15, 100);
    run.scenarios[0].backends[1].histogram = "garbage".into();
    let err = gate::evaluate(&run, None, &budgets).unwrap_err();
    assert!(err.to_string().contains("`rust`"), "{err}");

    let run = one_scenario(GO, GO, 15, 100);
    let mut other = run.clone();
    other.scenarios[0].scenario = "ingest".into();
    assert!(matches!(
        gate::evaluate(&run, Some(&other), &budgets),
        Err(GateError::NothingInCommon { .. })
    ));

    let empty = synthetic::run(Mode::Shadow, vec![]);
    assert!(matches!(
        gate::evaluate(&empty, None, &budgets),
        Err(GateError::NoScenarios)
    ));

    let bad = Budgets {
        stats: parallax_report::stats::Settings {
            confidence: 1.5,
            ..Default::default()
        },
        ..Budgets::default()
    };
    assert!(matches!(
        gate::evaluate(&run, None, &bad),
        Err(GateError::Setting { .. })
    ));
}

#[test]
fn an_aa_run_judges_go_b_against_go_a() {
    use parallax_report::Role;
    let run = synthetic::run(
        Mode::Aa,
        vec![synthetic::scenario(
            "ingest",
            "events",
            vec![
                synthetic::backend("go-a", Role::Baseline, GO, 16, 5_000, 5),
                synthetic::backend("go-b", Role::Candidate, GO, 17, 5_000, 5),
            ],
        )],
    );
    let report = judge(&run, &Budgets::default());
    assert!(report.passed(), "{}", report.table());
    assert_eq!(check(&report, "p99 ratio").subject, "go-b/go-a");
}

#[test]
fn an_aa_run_with_noisy_p99s_widens_the_p99_budget_by_that_noise() {
    // Two identical backends whose p99s came out 2x apart on this machine:
    // a candidate 1.8x slower is then within the harness's own noise.
    let aa = synthetic::run(
        Mode::Aa,
        vec![synthetic::pair("cache", GO, GO.scaled(2.0), 7, 20_000, 10)],
    );
    let current = one_scenario(GO, GO.scaled(1.8), 8, 20_000);
    let plain = judge(&current, &Budgets::default());
    assert_eq!(failed(&plain), ["p99 ratio"], "{}", plain.table());

    let calibrated = Budgets {
        p99_noise: gate::noise_factors(&aa, &Budgets::default().stats).unwrap(),
        ..Budgets::default()
    };
    let factor = calibrated.p99_noise["cache"];
    assert!((1.8..2.3).contains(&factor), "noise factor {factor}");
    let report = judge(&current, &calibrated);
    assert!(report.passed(), "{}", report.table());
    assert!(check(&report, "p99 ratio").note.contains("widened"));
}

#[test]
fn a_regression_far_beyond_the_aa_noise_still_fails() {
    let aa = synthetic::run(
        Mode::Aa,
        vec![synthetic::pair("cache", GO, GO.scaled(1.2), 9, 20_000, 10)],
    );
    let calibrated = Budgets {
        p99_noise: gate::noise_factors(&aa, &Budgets::default().stats).unwrap(),
        ..Budgets::default()
    };
    let report = judge(&one_scenario(GO, GO.scaled(4.0), 10, 20_000), &calibrated);
    assert_eq!(failed(&report), ["p99 ratio"], "{}", report.table());
}

#[test]
fn a_scenario_carries_its_own_budgets_and_the_command_line_overrides_them() {
    let mut run = one_scenario(GO, GO.scaled(2.0), 2, 20_000);
    // The experiment file allows a p99 twice the baseline's and more.
    run.scenarios[0].budgets = Some(parallax_report::BudgetSpec {
        max_p99_ratio: Some(Some(3.0)),
        ..Default::default()
    });
    assert!(judge(&run, &Budgets::default()).passed());
    // A flag wins over the file.
    let flags = Budgets {
        overrides: parallax_report::BudgetSpec {
            max_p99_ratio: Some(Some(1.5)),
            ..Default::default()
        },
        ..Budgets::default()
    };
    assert_eq!(failed(&judge(&run, &flags)), ["p99 ratio"]);
    // "off" in the file turns a check off.
    run.scenarios[0].budgets = Some(parallax_report::BudgetSpec {
        max_p99_ratio: Some(None),
        ..Default::default()
    });
    assert_eq!(
        check(&judge(&run, &Budgets::default()), "p99 ratio").verdict,
        Verdict::Info
    );
}

#[test]
fn unmeasured_cpu_and_rss_are_skipped_not_judged() {
    let mut run = one_scenario(GO, GO, 3, 2_000);
    run.scenarios[0].backends[1].cpu_seconds = None;
    run.scenarios[0].backends[1].peak_rss_bytes = None;
    let budgets = Budgets {
        max_cpu_ratio: Some(1.0),
        ..Budgets::default()
    };
    let report = judge(&run, &budgets);
    assert!(report.passed(), "{}", report.table());
    assert_eq!(check(&report, "RSS ratio").verdict, Verdict::Skip);
    assert_eq!(check(&report, "CPU/request ratio").verdict, Verdict::Skip);
    assert!(check(&report, "RSS ratio").note.contains("not measured"));
}

#[test]
fn a_failing_mismatch_rate_names_the_paths_that_differ() {
    let mut run = one_scenario(GO, GO, 4, 2_000);
    run.scenarios[0].comparison = Some(Comparison {
        compared: 100,
        matched: 60,
        mismatched: 40,
        differences: vec![parallax_report::PathDifference {
            route: "/v1/orders/{id}".into(),
            path: "/total".into(),
            kind: "type".into(),
            count: 40,
            baseline: Some("12.5".into()),
            candidate: Some("\"12.50\"".into()),
        }],
        ..Comparison::default()
    });
    let report = judge(&run, &Budgets::default());
    let c = check(&report, "mismatch rate");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.note.contains("/v1/orders/{id} /total type x40"),
        "{}",
        c.note
    );
}

/// A capacity result: the baseline (`go`) and candidate (`rust`) held
/// these rates.
fn with_capacity(
    mut run: RunResults,
    go: Option<f64>,
    rust: Option<f64>,
    rust_top: bool,
) -> RunResults {
    let backend = |name: &str, cap: Option<f64>, at_least: bool| parallax_report::BackendCapacity {
        name: name.into(),
        capacity_per_sec: cap,
        at_least,
        probes: Vec::new(),
    };
    run.scenarios[0].capacity = Some(parallax_report::Capacity {
        slo: "p99<20ms".into(),
        max_late_ratio: 0.01,
        method: "search".into(),
        backends: vec![backend("go", go, false), backend("rust", rust, rust_top)],
    });
    run
}

#[test]
fn a_capacity_ratio_below_the_floor_fails_and_above_it_passes() {
    let budgets = Budgets {
        min_capacity_ratio: Some(0.9),
        ..Budgets::default()
    };
    let run = one_scenario(GO, GO, 11, 5_000);
    let report = judge(
        &with_capacity(run.clone(), Some(10_000.0), Some(7_000.0), false),
        &budgets,
    );
    let c = check(&report, "capacity ratio");
    assert_eq!(
        (c.verdict, c.observed),
        (Verdict::Fail, Some(0.7)),
        "{}",
        report.table()
    );
    assert!(
        report.table().contains(">= 0.900x"),
        "a floor reads >=:\n{}",
        report.table()
    );
    let report = judge(
        &with_capacity(run.clone(), Some(10_000.0), Some(15_000.0), false),
        &budgets,
    );
    assert_eq!(check(&report, "capacity ratio").verdict, Verdict::Pass);
    // The candidate held the top of its ladder: at least what it showed.
    let report = judge(
        &with_capacity(run.clone(), Some(10_000.0), Some(8_000.0), true),
        &budgets,
    );
    assert_eq!(check(&report, "capacity ratio").verdict, Verdict::Pass);
    // Held nothing at all while the baseline held something.
    let report = judge(
        &with_capacity(run.clone(), Some(10_000.0), None, false),
        &budgets,
    );
    assert_eq!(check(&report, "capacity ratio").verdict, Verdict::Fail);
    // No capacity measured: skipped, not passed.
    let report = judge(&run, &budgets);
    assert_eq!(check(&report, "capacity ratio").verdict, Verdict::Skip);
}

#[test]
fn a_v_a_runs_calibrate_the_p50_budget_and_the_capacity_floor() {
    let budgets = Budgets {
        max_p50_ratio: Some(1.1),
        min_capacity_ratio: Some(0.95),
        ..Budgets::default()
    };
    // This run: the candidate's median 1.15x, its capacity 0.9x.
    let run = with_capacity(
        one_scenario(GO, GO.scaled(1.15), 12, 20_000),
        Some(10_000.0),
        Some(9_000.0),
        false,
    );
    let report = judge(&run, &budgets);
    assert_eq!(
        failed(&report),
        ["p50 ratio", "capacity ratio"],
        "{}",
        report.table()
    );
    // A/A runs on the same machine showed 1.12x and 0.88x between two
    // identical backends: within that, the gate does not fail the build.
    let aa = with_capacity(
        synthetic::run(
            Mode::Aa,
            vec![synthetic::pair(
                "cache",
                GO,
                GO.scaled(1.12),
                13,
                20_000,
                10,
            )],
        ),
        Some(10_000.0),
        Some(8_800.0),
        false,
    );
    let mut calibrated = budgets.clone();
    gate::calibrate(&mut calibrated, std::slice::from_ref(&aa)).unwrap();
    let report = judge(&run, &calibrated);
    assert!(report.passed(), "{}", report.table());
    assert!(
        check(&report, "p50 ratio").note.contains("A/A"),
        "{}",
        report.table()
    );
    // The same A/A figures stored with the run (`parallax run --noise`).
    let mut stored = run.clone();
    stored.scenarios[0].noise =
        parallax_report::Noise::from_runs("cache", &[("aa.json".into(), &aa)]);
    let report = judge(&stored, &budgets);
    assert!(report.passed(), "{}", report.table());
    // A regression far beyond that noise still fails.
    let worse = with_capacity(
        one_scenario(GO, GO.scaled(1.6), 14, 20_000),
        Some(10_000.0),
        Some(5_000.0),
        false,
    );
    let report = judge(&worse, &calibrated);
    let failures = failed(&report);
    assert!(
        failures.contains(&"p50 ratio") && failures.contains(&"capacity ratio"),
        "{}",
        report.table()
    );
}
