//! `parallax run`'s options for verdicts one can trust: capacity at an SLO
//! (`--find-capacity`, `--rate START..ENDxFACTOR`), interleaved direct
//! blocks (`--block-secs`, `--order`), accounting by cgroup or `/proc`
//! (`--no-cgroups`) and A/A noise carried beside the result (`--noise`).
//!
//! They live here, flattened into `RunArgs`, so the run command's own
//! module stays about which scenarios run; the logic they switch on is in
//! `parallax_harness::{capacity, interleave, cgroup}` and
//! `parallax_report::Noise`.

use std::path::PathBuf;

use anyhow::Context as _;
use parallax_harness::capacity::{self, Ladder, RateSpec, Slo};
use parallax_harness::interleave::Order;
use parallax_harness::runner::RunOptions;
use parallax_proxy::config::MirrorOrder;
use parallax_report::{Noise, RunResults};

/// The flags (see `parallax run --help`).
#[derive(Debug, Clone, clap::Args)]
pub struct VerdictArgs {
    /// Find each backend's capacity: the highest rate it holds within
    /// `--slo` with under `--max-late-ratio` late or failed slots (the
    /// ladder of `--rate START..ENDxFACTOR`, by default the file's rate up
    /// to 64 times it by x1.5, then bisection to 5 %). Runs direct, each
    /// backend alone, probes interleaved; `--duration-secs` is one probe.
    #[arg(long)]
    pub find_capacity: bool,
    /// The latency objective of a capacity search or ladder.
    #[arg(long, default_value = "p99<20ms", value_name = "pNN<BOUND")]
    pub slo: Slo,
    /// Largest share of late or failed slots a held rate may have.
    #[arg(long, default_value_t = 0.01, value_name = "SHARE")]
    pub max_late_ratio: f64,
    /// Direct mode: the length of one block. The measured time is split
    /// into blocks alternating between the backends (default 2 s).
    #[arg(long, value_name = "SECS")]
    pub block_secs: Option<f64>,
    /// Direct mode: the order of the blocks, `abba` (A B B A, repeated) or
    /// `random[:SEED]` (each pair A B or B A by a seeded coin).
    #[arg(long, default_value = "abba", value_name = "abba|random[:SEED]")]
    pub order: Order,
    /// Measure CPU and memory by sampling /proc even where each backend
    /// could get a cgroup of its own.
    #[arg(long)]
    pub no_cgroups: bool,
    /// A/A results files (`parallax run --aa`, the same scenarios and
    /// shape; as many runs as you have): their ratios are stored with this
    /// run's scenarios and shown beside its ratios as the harness's noise.
    #[arg(long, value_name = "AA.json")]
    pub noise: Vec<PathBuf>,
    /// Shadow mode: which copy the proxy sends first, `alternate` (by
    /// turns, the default for a benchmark), `primary-first` or `unordered`
    /// (the proxy's production default, which sent the shadow's copy first
    /// nearly every time).
    #[arg(long, default_value = "alternate", value_name = "alternate|primary-first|unordered", value_parser = mirror_order)]
    pub mirror_order: MirrorOrder,
}

fn mirror_order(s: &str) -> Result<MirrorOrder, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("`{s}`: give alternate, primary-first or unordered"))
}

impl VerdictArgs {
    /// The capacity plan for `rate` (`--rate`), around `default` (the
    /// file's rate) when no ladder is given; `None` for a plain run.
    pub fn plan(&self, rate: Option<RateSpec>, default: f64) -> Option<capacity::Plan> {
        let ladder = match rate {
            Some(RateSpec::Ladder(l)) => l,
            _ if self.find_capacity => {
                let start = match rate {
                    Some(RateSpec::Fixed(r)) => r,
                    _ => default,
                };
                Ladder {
                    start,
                    end: start * 64.0,
                    factor: 1.5,
                }
            }
            _ => return None,
        };
        Some(capacity::Plan {
            ladder,
            bisect: self.find_capacity,
            tolerance: 0.05,
            max_bisections: 6,
            slo: self.slo,
            max_late_ratio: self.max_late_ratio,
        })
    }

    /// Lays these options over a run's: block length and order, the
    /// capacity plan, the accounting.
    pub fn apply(&self, rate: Option<RateSpec>, default_rate: f64, options: &mut RunOptions) {
        options.block_secs = self.block_secs;
        options.order = self.order;
        options.capacity = self.plan(rate, default_rate);
        options.no_cgroups = self.no_cgroups;
        options.mirror_order = Some(self.mirror_order);
    }

    /// Checks that cannot be expressed in clap.
    pub fn check(&self) -> anyhow::Result<()> {
        if !(self.max_late_ratio > 0.0 && self.max_late_ratio < 1.0) {
            anyhow::bail!(
                "--max-late-ratio {}: give a share between 0 and 1 (0.01 = 1 %)",
                self.max_late_ratio
            );
        }
        if let Some(b) = self.block_secs.filter(|b| !(*b >= 0.2 && b.is_finite())) {
            anyhow::bail!("--block-secs {b}: give at least 0.2 s");
        }
        Ok(())
    }

    /// Stores the A/A files' ratios with each scenario of `results` they
    /// share a name with.
    pub fn attach_noise(&self, results: &mut RunResults) -> anyhow::Result<()> {
        if self.noise.is_empty() {
            return Ok(());
        }
        let mut runs = Vec::new();
        for path in &self.noise {
            let aa =
                RunResults::load(path).with_context(|| format!("--noise {}", path.display()))?;
            if aa.mode != parallax_report::Mode::Aa {
                anyhow::bail!(
                    "--noise {}: not an A/A run (mode {:?}); make one with `parallax run --aa`",
                    path.display(),
                    aa.mode
                );
            }
            runs.push((path.display().to_string(), aa));
        }
        for s in &mut results.scenarios {
            let refs: Vec<(String, &RunResults)> =
                runs.iter().map(|(p, r)| (p.clone(), r)).collect();
            s.noise = Noise::from_runs(&s.scenario, &refs);
        }
        Ok(())
    }
}
