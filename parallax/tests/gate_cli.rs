//! `parallax gate` as CI runs it: the built binary, result files on disk, and
//! the exit code (0 pass, 1 budget broken, 2 invalid input).

use std::path::PathBuf;
use std::process::Output;

use parallax_report::synthetic::{self, LogNormal};
use parallax_report::{Mode, RunResults};

const GO: LogNormal = LogNormal {
    median_us: 900.0,
    sigma: 0.5,
};

/// A fresh directory for one test's files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("parallax-gate-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn save(&self, name: &str, run: &RunResults) -> PathBuf {
        let path = self.0.join(name);
        run.save(&path).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_with(rust: LogNormal, seed: u64) -> RunResults {
    synthetic::run(
        Mode::Shadow,
        vec![synthetic::pair("ingest", GO, rust, seed, 20_000, 10)],
    )
}

fn gate(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_parallax"))
        .arg("gate")
        .args(args.iter().map(|a| a.as_ref()))
        // The gate must not need a checkout: run it from elsewhere.
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run parallax")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_equal_run_passes_with_exit_code_zero() {
    let dir = TempDir::new("pass");
    let results = dir.save("results.json", &run_with(GO, 1));
    let out = gate(&[&results]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("gate: PASS"), "{}", stdout(&out));
}

#[test]
fn a_candidate_twice_as_slow_fails_with_exit_code_one() {
    let dir = TempDir::new("slow");
    let results = dir.save("results.json", &run_with(GO.scaled(2.0), 2));
    let out = gate(&[&results, &"--max-p99-ratio", &"1.5"]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let table = stdout(&out);
    assert!(
        table
            .lines()
            .any(|l| l.contains("p99 ratio") && l.contains("FAIL")),
        "{table}"
    );
    // With the budget off, the same file passes.
    let out = gate(&[&results, &"--max-p99-ratio", &"off"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

#[test]
fn a_run_whose_load_fell_behind_its_schedule_fails_however_good_its_latency() {
    let dir = TempDir::new("late");
    let mut run = run_with(GO, 5);
    // The baseline's generator sent a fifth of its slots late: its p99 says
    // more about the load generator's stalls than about the backend.
    let base = &mut run.scenarios[0].backends[0];
    base.late = base.requests / 5;
    let results = dir.save("results.json", &run);
    let out = gate(&[&results]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let table = stdout(&out);
    assert!(
        table
            .lines()
            .any(|l| l.contains("late slots") && l.contains("FAIL") && l.contains("schedule")),
        "{table}"
    );
    // Under the budget it passes, and the budget can be turned off.
    let out = gate(&[&results, &"--max-late-rate", &"0.25"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let out = gate(&[&results, &"--max-late-rate", &"off"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

#[test]
fn a_regression_against_the_previous_run_fails_unless_the_budget_allows_it() {
    let dir = TempDir::new("regression");
    let before = dir.save("before.json", &run_with(GO, 3));
    let now = dir.save("now.json", &run_with(GO.scaled(1.3), 4));
    let out = gate(&[&now, &"--baseline", &before, &"--max-regression", &"10%"]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("p99 regression"), "{}", stdout(&out));
    let out = gate(&[&now, &"--baseline", &before, &"--max-regression", &"60%"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

#[test]
fn a_missing_file_is_invalid_input_with_exit_code_two() {
    let dir = TempDir::new("missing");
    let missing = dir.0.join("nope.json");
    let out = gate(&[&missing]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("nope.json"), "{}", stderr(&out));
}

#[test]
fn a_file_of_another_schema_is_invalid_input() {
    let dir = TempDir::new("schema");
    let path = dir.0.join("other.json");
    std::fs::write(&path, r#"{"schema":"goose/v1","scenarios":[]}"#).unwrap();
    let out = gate(&[&path]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("goose/v1"), "{}", stderr(&out));
}

#[test]
fn a_scenario_without_a_candidate_is_invalid_input() {
    let dir = TempDir::new("nocandidate");
    let mut run = run_with(GO, 5);
    run.scenarios[0].backends.retain(|b| b.name == "go");
    let path = dir.save("results.json", &run);
    let out = gate(&[&path]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("candidate"), "{}", stderr(&out));
}

#[test]
fn a_malformed_budget_is_refused_with_exit_code_two() {
    let dir = TempDir::new("badflag");
    let results = dir.save("results.json", &run_with(GO, 6));
    assert_eq!(code(&gate(&[&results, &"--max-p99-ratio", &"fast"])), 2);
    assert_eq!(code(&gate(&[&results, &"--confidence", &"1.2"])), 2);
}
