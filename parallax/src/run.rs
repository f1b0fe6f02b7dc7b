//! `parallax run` without a file: the built-in twin pairs, which are
//! experiment files like any of yours — `experiments/ingest.toml` (protobuf
//! batches, Kafka records joined), `experiments/cache.toml` and
//! `experiments/fanout.toml` (WebSocket sessions) — run by
//! `parallax-harness` (see [`crate::experiment`]). This module only picks
//! the files (`--scenario`), sets the built-in durations, and starts the
//! local Kafka the ingest file's side effects need (reusing a running one,
//! stopping the one it started unless `--keep-kafka`).
//!
//! Modes (for every scenario): **shadow** (default, `parallax proxy` in
//! front, every request mirrored and compared), **direct** (`--direct`,
//! each backend alone in turn, A B B A), **A/A** (`--aa`, Go against Go).

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, ValueEnum};

use parallax_harness::capacity::RateSpec;

use crate::kafka;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Event ingestion: protobuf batches over HTTP, published to Kafka.
    Ingest,
    /// Session cache: Zipf-keyed reads and writes.
    Cache,
    /// Notification fan-out: WebSocket subscribers, broadcast latency.
    Fanout,
    /// All three, one after the other.
    All,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Experiment files to run (docs/experiments.md): your own services,
    /// traffic, compare rules and budgets. Without any, the built-in twin
    /// pairs run.
    #[arg(value_name = "EXPERIMENT.toml")]
    pub experiments: Vec<PathBuf>,
    /// Which twin pair(s) to compare (without experiment files).
    #[arg(long, value_enum, default_value = "all")]
    pub scenario: Scenario,
    /// Measured seconds per scenario (split A, B, B, A with --direct).
    /// Default 15 for the built-in pairs; an experiment file's `load.duration_secs`.
    #[arg(long)]
    pub duration_secs: Option<f64>,
    /// Seconds of unmeasured load first.
    /// Default 3 for the built-in pairs; an experiment file's `load.warmup_secs`.
    #[arg(long)]
    pub warmup_secs: Option<f64>,
    /// Requests per second, replacing every experiment file's `load.rate`
    /// (built-in pairs: ingest batches of 500 events, default 20; cache
    /// operations, 2000; fan-out notifications, 20). A ladder
    /// `START..ENDxFACTOR` (`2000..64000x1.5`) climbs it, each backend
    /// alone, and reports each one's capacity at `--slo` (experiment files).
    #[arg(long, value_name = "RATE | START..ENDxFACTOR")]
    pub rate: Option<RateSpec>,
    /// Capacity, interleaving, accounting and noise.
    #[command(flatten)]
    pub verdict: crate::verdict::VerdictArgs,
    /// WebSocket sessions per backend, replacing an experiment file's
    /// `traffic.websocket.clients` (built-in fan-out: 2000).
    #[arg(long)]
    pub clients: Option<usize>,
    /// Extra flags for the candidate twin (e.g. a fault injection when
    /// testing the gate), one string split on spaces.
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    pub candidate_flags: String,
    /// Load each backend alone in turn (A, B, B, A) instead of mirroring.
    #[arg(long)]
    pub direct: bool,
    /// Go against Go: the harness's own noise.
    #[arg(long)]
    pub aa: bool,
    /// Use this Kafka instead of starting the local one.
    #[arg(long)]
    pub kafka_brokers: Option<String>,
    /// Leave the local Kafka running if this run started it.
    #[arg(long)]
    pub keep_kafka: bool,
    /// Where results.json, report.html and the logs go.
    #[arg(long, default_value = "target/parallax-run")]
    pub out: PathBuf,
    /// With experiment files: check them and show what would run (the
    /// backends' commands, a few rendered requests) without starting
    /// anything.
    #[arg(long)]
    pub check: bool,
}

impl RunArgs {
    /// Whether a capacity search or ladder was asked for.
    pub fn capacity(&self) -> bool {
        self.verdict.find_capacity || matches!(self.rate, Some(RateSpec::Ladder(_)))
    }

    /// The one rate given (`None`: none, or a ladder).
    pub fn fixed_rate(&self) -> Option<f64> {
        match self.rate {
            Some(RateSpec::Fixed(r)) => Some(r),
            _ => None,
        }
    }

    fn duration(&self) -> f64 {
        self.duration_secs.unwrap_or(15.0)
    }

    fn warmup(&self) -> f64 {
        self.warmup_secs.unwrap_or(3.0)
    }

    fn scenarios(&self) -> Vec<Scenario> {
        match self.scenario {
            Scenario::All => vec![Scenario::Ingest, Scenario::Cache, Scenario::Fanout],
            one => vec![one],
        }
    }
}

pub fn run(root: &Path, args: &RunArgs) -> anyhow::Result<()> {
    if args.duration() < 2.0 {
        bail!("--duration-secs must be at least 2");
    }
    crate::experiment::interrupt_handler()?;
    // Relative to where the user is, as with experiment files.
    let out = std::env::current_dir()?.join(&args.out);
    std::fs::create_dir_all(&out)?;
    let scenarios = args.scenarios();
    let files: Vec<PathBuf> = scenarios
        .iter()
        .filter_map(|s| match s {
            Scenario::Ingest => Some("ingest"),
            Scenario::Cache => Some("cache"),
            Scenario::Fanout => Some("fanout"),
            Scenario::All => None,
        })
        .map(|name| root.join("experiments").join(format!("{name}.toml")))
        .collect();
    let mut experiments = crate::experiment::load(&files)?;
    crate::experiment::overrides(&mut experiments, args)?;
    if args.check {
        for file in &files {
            println!("{}", file.display());
        }
        return Ok(());
    }
    // The built-in files run at the built-in defaults unless told otherwise.
    let args = RunArgs {
        duration_secs: Some(args.duration()),
        warmup_secs: Some(args.warmup()),
        ..args.clone()
    };
    let args = &args;

    let mut started_kafka = false;
    let needs_kafka = experiments.iter().any(|x| x.side_effects.kafka.is_some());
    if needs_kafka {
        let brokers = match &args.kafka_brokers {
            Some(b) => b.clone(),
            None => {
                started_kafka = !kafka::running(root);
                kafka::up(root)?
            }
        };
        for x in &mut experiments {
            if let Some(k) = &mut x.side_effects.kafka {
                k.brokers = Some(brokers.clone());
            }
        }
    }
    let outcome = crate::experiment::run_all(&experiments, args, &out);
    if started_kafka && !args.keep_kafka {
        eprintln!("stopping the Kafka this run started (--keep-kafka keeps it)");
        let _ = kafka::down(root);
    }
    crate::experiment::write(&outcome?, &out)
}
