//! `parallax kafka up|down|status`: the CLI face of `scripts/kafka.sh`, which
//! fetches Kafka from Maven Central, formats a KRaft node and runs it.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use clap::Subcommand;

#[derive(Debug, Clone, Subcommand)]
pub enum Action {
    /// Start the broker (reusing a running one) and wait until it answers.
    Up,
    /// Stop the broker.
    Down {
        /// Also delete its data.
        #[arg(long)]
        purge: bool,
    },
    /// Say whether the broker runs and answers (exit 3 when stopped, 4 when
    /// alive but not answering).
    Status,
}

pub fn run(root: &Path, action: &Action) -> anyhow::Result<()> {
    let args: &[&str] = match action {
        Action::Up => &["up"],
        Action::Down { purge: false } => &["down"],
        Action::Down { purge: true } => &["down", "--purge"],
        Action::Status => &["status"],
    };
    let code = script(root, args)?;
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

/// Brings Kafka up and returns its bootstrap address.
pub fn up(root: &Path) -> anyhow::Result<String> {
    let code = script(root, &["up"])?;
    if code != 0 {
        bail!("scripts/kafka.sh up failed (exit {code}); see its output above");
    }
    let port = std::env::var("PARALLAX_KAFKA_PORT").unwrap_or_else(|_| "9092".to_owned());
    Ok(format!("127.0.0.1:{port}"))
}

/// Whether a local broker process exists (quietly). One that is alive but
/// slow to answer (`status` exit 4) counts as running: it is not ours to
/// stop later.
pub fn running(root: &Path) -> bool {
    Command::new(root.join("scripts/kafka.sh"))
        .arg("status")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.code() != Some(3))
}

/// Stops the local broker.
pub fn down(root: &Path) -> anyhow::Result<()> {
    let code = script(root, &["down"])?;
    if code != 0 {
        bail!("scripts/kafka.sh down failed (exit {code})");
    }
    Ok(())
}

fn script(root: &Path, args: &[&str]) -> anyhow::Result<i32> {
    let path = root.join("scripts/kafka.sh");
    let status = Command::new(&path)
        .args(args)
        .status()
        .with_context(|| format!("cannot run {}", path.display()))?;
    Ok(status.code().unwrap_or(1))
}
