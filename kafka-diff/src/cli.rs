//! `parallax kafka-diff`: the flags, and the run behind them.
//!
//! Exit codes: 0 when the topics agree, 1 when differences were found (the
//! summary table says which), 2 for usage errors (clap's own) and for a
//! broker, topic, file or listener that cannot be used (the message names
//! it).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::compare::INGEST_EVENT_MESSAGE;
use crate::differ::{Differ, DifferConfig, Start, Stop};
use crate::error::Error;
use crate::report::KafkaComparison;

/// Compare what two twins published: join both topics on the `event-id`
/// header within a window and report matched, missing, extra and different
/// records.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Kafka bootstrap brokers, `host:port[,host:port]`.
    #[arg(long, env = "PARALLAX_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// The primary's (reference's) topic.
    #[arg(long, default_value = "events")]
    pub primary_topic: String,
    /// The shadow's topic.
    #[arg(long, default_value = "events.shadow")]
    pub shadow_topic: String,
    /// Seconds a record waits for its partner on the other topic (on the
    /// differ's clock) before it counts as missing or extra.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub window_secs: u64,
    /// Serve /metrics and /admin/kafka-mismatches here while running
    /// (port 0 picks one).
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Read both topics from their first records.
    #[arg(long, conflicts_with = "from_now")]
    pub from_beginning: bool,
    /// Read only records produced after start-up (the default).
    #[arg(long)]
    pub from_now: bool,
    /// Stop after this many seconds without a record on either topic.
    #[arg(long, conflicts_with = "duration_secs", value_parser = clap::value_parser!(u64).range(1..))]
    pub until_idle_secs: Option<u64>,
    /// Stop after this many seconds. Without either, run until SIGINT/SIGTERM.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration_secs: Option<u64>,
    /// Append every difference as a JSON line to this file.
    #[arg(long)]
    pub samples_file: Option<PathBuf>,
    /// Differences kept in memory and printed with the summary.
    #[arg(long, default_value_t = 20)]
    pub max_samples: usize,
    /// Records that may wait in the window per side; beyond it the oldest
    /// counts as missing (or extra) and as overflow.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pending: u64,
    /// Protobuf message of record values, decoded to name differing fields;
    /// empty compares values as bytes.
    #[arg(long, default_value = INGEST_EVENT_MESSAGE)]
    pub value_message: String,
    /// Seconds the brokers may take to answer at start-up.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_timeout_secs: u64,
}

impl Args {
    pub fn config(&self) -> DifferConfig {
        DifferConfig {
            window: Duration::from_secs(self.window_secs),
            start: if self.from_beginning {
                Start::Beginning
            } else {
                Start::Now
            },
            max_pending: usize::try_from(self.max_pending).unwrap_or(usize::MAX),
            max_samples: self.max_samples,
            samples_file: self.samples_file.clone(),
            value_message: Some(self.value_message.clone()).filter(|m| !m.is_empty()),
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
            ..DifferConfig::new(&self.brokers, &self.primary_topic, &self.shadow_topic)
        }
    }

    pub fn stop(&self) -> Stop {
        match (self.until_idle_secs, self.duration_secs) {
            (Some(idle), _) => Stop::Idle(Duration::from_secs(idle)),
            (None, Some(total)) => Stop::After(Duration::from_secs(total)),
            (None, None) => Stop::Never,
        }
    }
}

/// Runs the diff (and the admin listener, if asked for) until its stop
/// rule or `shutdown`.
pub async fn diff(
    args: &Args,
    shutdown: impl Future<Output = ()>,
) -> Result<KafkaComparison, Error> {
    let differ = Differ::connect(args.config()).await?;
    let (stop_admin, admin_stopped) = oneshot::channel::<()>();
    if let Some(addr) = args.admin {
        let (bound, server) =
            crate::admin::bind(addr, differ.metrics(), differ.samples(), async move {
                let _ = admin_stopped.await;
            })
            .await?;
        eprintln!("kafka-diff: admin listening on {bound}");
        tokio::spawn(server);
    }
    eprintln!(
        "kafka-diff: comparing {} (primary) with {} (shadow) on {}",
        args.primary_topic, args.shadow_topic, args.brokers
    );
    let comparison = differ.run(args.stop(), shutdown).await;
    let _ = stop_admin.send(());
    Ok(comparison)
}

/// 0 when the topics agree, 1 on differences, 2 when the diff could not run.
pub fn exit_code(result: &Result<KafkaComparison, Error>) -> i32 {
    match result {
        Ok(c) if c.has_differences() => 1,
        Ok(_) => 0,
        Err(_) => 2,
    }
}

/// The CLI entry: runs until the stop rule or SIGINT/SIGTERM, prints the
/// summary (stdout) or the error (stderr), and returns the exit code.
pub fn run(args: &Args) -> i32 {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("parallax kafka-diff: cannot start the async runtime: {e}");
            return 2;
        }
    };
    let result = runtime.block_on(diff(args, signal()));
    match &result {
        Ok(comparison) => print!("{comparison}"),
        Err(e) => eprintln!("parallax kafka-diff: {e}"),
    }
    exit_code(&result)
}

/// Resolves on SIGTERM or SIGINT.
async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("kafka-diff").chain(argv.iter().copied()))
            .map(|c| c.args)
    }

    #[test]
    fn defaults_read_from_now_until_a_signal() {
        let args = parse(&[]).unwrap();
        let config = args.config();
        assert_eq!(config.start, Start::Now);
        assert_eq!(config.window, Duration::from_secs(30));
        assert_eq!(config.value_message.as_deref(), Some(INGEST_EVENT_MESSAGE));
        assert_eq!(args.stop(), Stop::Never);
    }

    #[test]
    fn stop_rules_and_start_points_are_flags() {
        let args = parse(&["--from-beginning", "--until-idle-secs", "3"]).unwrap();
        assert_eq!(args.config().start, Start::Beginning);
        assert_eq!(args.stop(), Stop::Idle(Duration::from_secs(3)));
        let args = parse(&["--duration-secs", "9", "--value-message", ""]).unwrap();
        assert_eq!(args.stop(), Stop::After(Duration::from_secs(9)));
        assert_eq!(args.config().value_message, None);
    }

    #[test]
    fn contradictory_or_empty_settings_are_usage_errors() {
        for argv in [
            &["--from-beginning", "--from-now"][..],
            &["--until-idle-secs", "1", "--duration-secs", "1"],
            &["--window-secs", "0"],
            &["--max-pending", "0"],
        ] {
            let e = parse(argv)
                .err()
                .unwrap_or_else(|| panic!("{argv:?} parsed"));
            assert_eq!(e.exit_code(), 2, "{argv:?}");
        }
    }
}
