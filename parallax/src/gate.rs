//! `parallax gate results.json`: hold a run to its budgets and fail the build
//! when one is broken.
//!
//! The judging is in `parallax_report::gate`; this is the command line: it
//! reads the files, prints the verdict table and maps the outcome to an exit
//! code CI can branch on — 0 every budget kept, 1 a budget broken, 2 input
//! that cannot be judged (missing file, wrong schema, absent backends).

use std::path::PathBuf;
use std::str::FromStr;

use parallax_report::gate::{self, Budgets};
use parallax_report::stats::Settings;
use parallax_report::{BudgetSpec, RunResults};

/// Exit code when every budget is kept.
pub const PASS: i32 = 0;
/// Exit code when a budget is broken.
pub const FAIL: i32 = 1;
/// Exit code when the input cannot be judged.
pub const INVALID: i32 = 2;

/// What `parallax gate --help` says after the options.
const AFTER_HELP: &str = "\
Candidates (role \"candidate\") are judged against the baseline of the same scenario.
Latency ratios use a bootstrap confidence interval from the recorded histograms: a budget
fails only when the whole interval lies above it, so noise does not fail a build. The p50
budget is judged with a one-sided Mann-Whitney U test against the baseline scaled by it.
RSS and CPU are single measurements and are compared directly. The capacity ratio (a run
with --find-capacity or a rate ladder) is compared with --min-capacity-ratio directly; a
candidate that held the top of its ladder passes what it showed. Any budget takes `off`.

Exit codes: 0 every budget kept, 1 a budget broken, 2 invalid input.";

/// `parallax gate` options.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct GateArgs {
    /// The results file of the run to judge (`parallax run` writes it).
    pub results: PathBuf,
    /// An earlier results file: also judge each backend's change since then.
    #[arg(long, value_name = "PREVIOUS.json")]
    pub baseline: Option<PathBuf>,
    /// A/A results files (`parallax run --aa`) from the same machine, one
    /// flag each: the calibration. Each scenario's p99 budget is widened by
    /// the p99 ratio two identical backends showed (the largest over the
    /// files), its p50 budget by their largest p50 departure from 1, and the
    /// capacity floor lowered by their capacity spread. Without it, A/A
    /// figures stored in the results (`parallax run --noise`) are used.
    #[arg(long, value_name = "AA.json")]
    pub noise: Vec<PathBuf>,
    /// Smallest candidate/baseline capacity ratio (results of a capacity
    /// search or ladder; SKIP otherwise). Default: the experiment file's, else off.
    #[arg(long, value_name = "RATIO")]
    pub min_capacity_ratio: Option<Limit>,
    /// Largest candidate/baseline p99 ratio. Default: the experiment file's, else 1.5.
    #[arg(long, value_name = "RATIO")]
    pub max_p99_ratio: Option<Limit>,
    /// Largest candidate/baseline p50 ratio (Mann-Whitney test against the
    /// baseline scaled by it). Default: the experiment file's, else off.
    #[arg(long, value_name = "RATIO")]
    pub max_p50_ratio: Option<Limit>,
    /// Largest candidate/baseline peak-RSS ratio. Default: the experiment file's, else 1.0.
    #[arg(long, value_name = "RATIO")]
    pub max_rss_ratio: Option<Limit>,
    /// Largest candidate/baseline ratio of CPU-seconds per request. Default: the experiment file's, else off.
    #[arg(long, value_name = "RATIO")]
    pub max_cpu_ratio: Option<Limit>,
    /// Largest share of mismatching pairs (proxy comparison and Kafka join). Default: the experiment file's, else 0.001.
    #[arg(long, value_name = "SHARE")]
    pub max_mismatch_rate: Option<Limit>,
    /// Largest share of failed requests per backend. Default: the experiment file's, else off.
    #[arg(long, value_name = "SHARE")]
    pub max_error_rate: Option<Limit>,
    /// Largest share of schedule slots sent late per backend (the load did
    /// not hold its open-model schedule). Default: the experiment file's, else 0.10.
    #[arg(long, value_name = "SHARE")]
    pub max_late_rate: Option<Limit>,
    /// Largest growth of p99, CPU per request and RSS against --baseline.
    /// Default: the experiment file's, else 10%.
    #[arg(long, value_name = "PERCENT")]
    pub max_regression: Option<Percent>,
    /// Confidence level of the intervals (two-sided).
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Seed of the bootstrap; the same seed gives the same verdict.
    #[arg(long, default_value_t = Settings::default().seed)]
    pub seed: u64,
}

/// A budget, or `off`.
#[derive(Debug, Clone, Copy)]
pub struct Limit(pub Option<f64>);

impl FromStr for Limit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        s.parse()
            .map(|v| Self(Some(v)))
            .map_err(|_| format!("`{s}` is neither a number nor `off`"))
    }
}

/// A percentage (`10%` or `10`), or `off`.
#[derive(Debug, Clone, Copy)]
pub struct Percent(pub Option<f64>);

impl FromStr for Percent {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        gate::parse_percent(s).map(|v| Self(Some(v)))
    }
}

/// Runs the gate and returns the process exit code.
pub fn run(args: &GateArgs) -> i32 {
    match judge(args) {
        Ok(report) => {
            print!("{}", report.table());
            if report.passed() {
                PASS
            } else {
                FAIL
            }
        }
        Err(e) => {
            // The library errors already carry their cause in the message.
            eprintln!("parallax gate: {e}");
            INVALID
        }
    }
}

fn judge(args: &GateArgs) -> anyhow::Result<gate::GateReport> {
    let current = RunResults::load(&args.results)?;
    let older = args.baseline.as_ref().map(RunResults::load).transpose()?;
    // Precedence per budget: a flag, else the scenario's experiment file
    // (carried in results.json), else the gate's default.
    let flags = BudgetSpec {
        max_p99_ratio: args.max_p99_ratio.map(|l| l.0),
        max_p50_ratio: args.max_p50_ratio.map(|l| l.0),
        max_rss_ratio: args.max_rss_ratio.map(|l| l.0),
        max_cpu_ratio: args.max_cpu_ratio.map(|l| l.0),
        max_mismatch_rate: args.max_mismatch_rate.map(|l| l.0),
        max_error_rate: args.max_error_rate.map(|l| l.0),
        max_late_rate: args.max_late_rate.map(|l| l.0),
        max_regression: args.max_regression.map(|p| p.0),
        min_capacity_ratio: args.min_capacity_ratio.map(|l| l.0),
    };
    let defaults = Budgets {
        stats: Settings {
            confidence: args.confidence,
            seed: args.seed,
            ..Settings::default()
        },
        ..Budgets::default()
    };
    let budgets = Budgets {
        overrides: flags,
        ..defaults.with_spec(&flags)
    };
    let mut budgets = budgets;
    let mut aa_runs = Vec::new();
    for path in &args.noise {
        let aa = RunResults::load(path)?;
        if aa.mode != parallax_report::Mode::Aa {
            anyhow::bail!(
                "{} is not an A/A run (mode {:?}); make one with `parallax run --aa`",
                path.display(),
                aa.mode
            );
        }
        aa_runs.push(aa);
    }
    gate::calibrate(&mut budgets, &aa_runs)?;
    Ok(gate::evaluate(&current, older.as_ref(), &budgets)?)
}
