//! `parallax`: the one command line in front of the harness.
//!
//! # Layout
//! - [`workspace`]: finding the repository (scripts, Go sources) from anywhere.
//! - [`kafka`]: `parallax kafka up|down|status`, a thin front for `scripts/kafka.sh`.
//! - [`twin`]: building the Go and Rust twins and running them as child processes.
//! - [`procstat`]: CPU-seconds and RSS of a child from `/proc`.
//! - [`run`]: `parallax run` without a file: the built-in twin pairs'
//!   experiment files (`experiments/*.toml`) and the local Kafka they need.
//! - [`experiment`]: `parallax run EXPERIMENT.toml`, the same job on your
//!   own services (`parallax-harness` runs it).
//! - [`stack`]: a free loopback port for `parallax bench proxy`.
//! - [`load`]: `parallax load ingest|cache|ws`, open-model load on goose.
//! - [`bench`](mod@bench): `parallax bench cache|cache-churn`, the twins under the same
//!   open-model load from `parallax-loadgen`, one at a time.
//! - [`fanout`]: `parallax bench fanout`, idle WebSocket memory and broadcast
//!   latency of the fan-out twins, clients in worker processes.
//! - [`proxy`]: `parallax proxy --config parallax.toml`, the shadowing proxy
//!   (`parallax-proxy`).
//! - [`gate`]: `parallax gate results.json`, a run held to its budgets
//!   (`parallax-report`), exit code for CI.
//! - [`kafka_diff`]: `parallax kafka-diff`, the twins' Kafka side effects
//!   compared (`parallax-kafka-diff`).
//! - [`capture_info`]: `parallax capture info`, a capture summarised
//!   (`parallax-capture`).
//! - [`replay`](mod@replay): `parallax replay`, a capture sent to targets
//!   open-model, results in the common schema.
//! - [`proxy_bench`]: `parallax bench proxy`, the proxy against direct and
//!   against nginx's `mirror`.

mod bench;
mod canary;
mod capture_info;
mod experiment;
mod fanout;
mod gate;
mod kafka;
mod kafka_diff;
mod load;
mod procstat;
mod proxy;
mod proxy_bench;
mod replay;
mod report_serve;
mod run;
mod stack;
mod twin;
mod verdict;
mod workspace;

use clap::{Parser, Subcommand};

/// Parallax: prove a Rust rewrite matches its Go original, side by side.
#[derive(Debug, Parser)]
#[command(name = "parallax", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage the local single-node Kafka (Apache Kafka 4.x, KRaft, from Maven Central).
    Kafka {
        #[command(subcommand)]
        action: kafka::Action,
    },
    /// Run an experiment on two services of your own (`parallax run
    /// orders.toml`, see docs/experiments.md), or, with no file, the built-in
    /// Go and Rust twins: the same traffic through both, a side-by-side table.
    Run(run::RunArgs),
    /// Benchmark the Go and Rust twins one at a time (A/B/B/A) under the
    /// same open-model load and print a side-by-side table.
    Bench {
        #[command(subcommand)]
        bench: bench::Bench,
    },
    /// Open-model load on goose against one target: any HTTP service from an
    /// experiment file's request templates, ingest batches, cache
    /// reads/writes, or WebSocket subscribers plus notifications.
    Load {
        #[command(subcommand)]
        load: load::Load,
    },
    /// Run the shadowing proxy: clients get the primary's answers, a copy of
    /// each request goes to the shadow, and the answers are compared.
    Proxy(proxy::ProxyArgs),
    /// Judge a results.json against budgets (p99/p50/RSS/CPU ratios, mismatch
    /// rate, regression since a previous run): exit 0 pass, 1 fail, 2 invalid.
    Gate(gate::GateArgs),
    /// Compare the Kafka side effects of the twins: join the primary's and
    /// the shadow's topics on the `event-id` header and report matched,
    /// missing, extra and different records (exit 1 on differences).
    KafkaDiff(kafka_diff::KafkaDiffArgs),
    /// A finished run's directory: `parallax report serve DIR` serves its
    /// report.html (latency, mismatches by JSON path) and results.json.
    Report {
        #[command(subcommand)]
        report: report_serve::Report,
    },
    /// Show, roll back or restart the canary releases of a running proxy
    /// (services with a [services.canary] table).
    Canary(canary::CanaryArgs),
    /// Inspect a traffic capture (Parallax .plxcap, GoReplay .gor, HAR).
    Capture {
        #[command(subcommand)]
        capture: capture_info::Capture,
    },
    /// Send a capture to one or more targets, open-model, at any speed
    /// (exit 1 when the schedule was not held).
    Replay(replay::ReplayArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Proxy(args) = &cli.command {
        // The proxy runs anywhere: it needs no repository checkout.
        return proxy::run(args);
    }
    if let Command::KafkaDiff(args) = &cli.command {
        // Like the proxy, it needs only brokers, no checkout.
        kafka_diff::run(args);
    }
    if let Command::Canary(args) = &cli.command {
        // Talks to a running proxy's admin listener only.
        return canary::run(args);
    }
    if let Command::Run(args) = &cli.command {
        if !args.experiments.is_empty() {
            // An experiment names its own services: no checkout needed.
            return experiment::run(args);
        }
    }
    if let Command::Capture { capture } = &cli.command {
        return capture_info::run(capture);
    }
    if let Command::Replay(args) = &cli.command {
        std::process::exit(replay::run(args)?);
    }
    if let Command::Load {
        load: load::Load::Merge(args),
    } = &cli.command
    {
        // Joins files: no checkout needed.
        return load::merge_files(args);
    }
    if let Command::Load {
        load: load::Load::Http(args),
    } = &cli.command
    {
        // Template traffic against a URL: no checkout needed.
        return load::http(args);
    }
    if let Command::Load {
        load: load::Load::Grpc(args),
    } = &cli.command
    {
        // gRPC calls against a URL: no checkout needed either.
        return load::grpc(args);
    }
    if let Command::Bench {
        bench: bench::Bench::FanoutWorker(args),
    } = &cli.command
    {
        // A WebSocket session worker of an experiment: no checkout needed.
        return fanout::worker(args);
    }
    if let Command::Report { report } = &cli.command {
        return report_serve::run(report);
    }
    if let Command::Gate(args) = &cli.command {
        // Judging a results file needs no checkout either.
        std::process::exit(gate::run(args));
    }
    if let Command::Load { load } = &cli.command {
        // A load test aims at a URL: no checkout needed, `--out` is
        // relative to the current directory.
        return load::run(load);
    }
    let root = workspace::root()?;
    match cli.command {
        Command::Kafka { action } => kafka::run(&root, &action),
        Command::Run(args) => run::run(&root, &args),
        Command::Bench { bench } => bench::run(&root, &bench),
        Command::Proxy(_) | Command::KafkaDiff(_) => unreachable!("served above"),
        Command::Gate(_) | Command::Canary(_) | Command::Report { .. } => {
            unreachable!("served above")
        }
        Command::Capture { .. } | Command::Replay(_) | Command::Load { .. } => {
            unreachable!("served above")
        }
    }
}
