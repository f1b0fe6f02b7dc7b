//! `parallax`: the one command line in front of the harness.
//!
//! # Layout
//! - [`workspace`]: finding the repository (scripts, Go sources) from anywhere.
//! - [`kafka`]: `parallax kafka up|down|status`, a thin front for `scripts/kafka.sh`.
//! - [`twin`]: building the Go and Rust twins and running them as child processes.
//! - [`procstat`]: CPU-seconds and RSS of a child from `/proc`.
//! - [`records`]: reading a topic back and diffing two twins' Kafka side effects.
//! - [`run`]: `parallax run`, the side-by-side job.

mod kafka;
mod procstat;
mod records;
mod run;
mod twin;
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
    /// Start the Go and Rust twins on a local stack, drive the same traffic
    /// through both and print a side-by-side comparison.
    Run(run::RunArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = workspace::root()?;
    match cli.command {
        Command::Kafka { action } => kafka::run(&root, &action),
        Command::Run(args) => run::run(&root, &args),
    }
}
