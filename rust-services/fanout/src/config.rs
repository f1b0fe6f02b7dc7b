//! Command-line and environment configuration (flags win over env vars).
//!
//! clap checks every value while parsing and exits non-zero with a message
//! naming the flag (`invalid value '0' for '--queue-capacity <N>'`).
//! [`Config::validate`] repeats the checks for configs built in code (tests,
//! `parallax run`), so [`run`](crate::run) never starts on one clap would
//! have refused. Ranges the contract leaves open, settled with the Go twin:
//! `--queue-capacity` 1–1048576, `--drop-limit` 1–1073741824,
//! `--ping-interval-secs` 1–86400, `--shutdown-grace-ms` ≥ 0;
//! `--kafka-brokers`, when given, is not empty; `--kafka-topic` is 1–249
//! bytes of `A–Z a–z 0–9 . _ -` (Kafka's own rule).

use std::time::Duration;

use clap::builder::BoolValueParser;
use clap::{ArgAction, Parser};

use crate::outbox::Limits;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8082";
pub const DEFAULT_QUEUE_CAPACITY: u32 = 256;
pub const DEFAULT_DROP_LIMIT: u32 = 64;
pub const DEFAULT_PING_INTERVAL_SECS: u32 = 30;
pub const DEFAULT_KAFKA_TOPIC: &str = "notifications";
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
pub const MAX_QUEUE_CAPACITY: u32 = 1 << 20;
pub const MAX_DROP_LIMIT: u32 = 1 << 30;
pub const MAX_PING_INTERVAL_SECS: u32 = 86_400;

/// The notification fan-out service (Rust twin).
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "parallax-fanout", version, about)]
pub struct Config {
    /// Address to serve HTTP and WebSocket on.
    #[arg(long, env = "FANOUT_LISTEN", value_name = "HOST:PORT", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// Address to serve gRPC (`FanoutService/Subscribe`) on; empty: no gRPC.
    #[arg(
        long,
        env = "FANOUT_GRPC_LISTEN",
        value_name = "HOST:PORT",
        default_value = ""
    )]
    pub grpc_listen: String,
    /// Bind with SO_REUSEPORT, so several processes share one port
    /// (`--reuse-port`, `--reuse-port=false`; env: `true` or `false`).
    #[arg(long, env = "FANOUT_REUSE_PORT", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true",
          action = ArgAction::Set, value_parser = BoolValueParser::new())]
    pub reuse_port: bool,
    /// Notification frames queued per connection before the oldest is dropped.
    #[arg(long, env = "FANOUT_QUEUE_CAPACITY", value_name = "N", default_value_t = DEFAULT_QUEUE_CAPACITY,
          value_parser = clap::value_parser!(u32).range(1..=MAX_QUEUE_CAPACITY as i64))]
    pub queue_capacity: u32,
    /// Consecutive drops after which a slow connection is closed with 1013.
    #[arg(long, env = "FANOUT_DROP_LIMIT", value_name = "N", default_value_t = DEFAULT_DROP_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..=MAX_DROP_LIMIT as i64))]
    pub drop_limit: u32,
    /// Server ping period in seconds; a peer silent for two periods is closed.
    #[arg(long, env = "FANOUT_PING_INTERVAL_SECS", value_name = "N", default_value_t = DEFAULT_PING_INTERVAL_SECS,
          value_parser = clap::value_parser!(u32).range(1..=MAX_PING_INTERVAL_SECS as i64))]
    pub ping_interval_secs: u32,
    /// Kafka bootstrap brokers, `host:port[,host:port]`; enables the Kafka path.
    #[arg(long, env = "FANOUT_KAFKA_BROKERS", value_name = "H:P[,..]",
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub kafka_brokers: Option<String>,
    /// Topic of the Kafka path.
    #[arg(long, env = "FANOUT_KAFKA_TOPIC", value_name = "NAME", default_value = DEFAULT_KAFKA_TOPIC,
          value_parser = kafka_topic)]
    pub kafka_topic: String,
    /// For the proxy's tests only: the gRPC stream sends the notification
    /// with this id with `published_at_unix_us` one higher (a planted
    /// difference the proxy must report at that field).
    #[arg(long, hide = true, value_name = "ID")]
    pub test_plant_grpc_mismatch: Option<String>,
    /// Drain time after SIGTERM/SIGINT, in milliseconds.
    #[arg(long, env = "FANOUT_SHUTDOWN_GRACE_MS", value_name = "N", default_value_t = DEFAULT_SHUTDOWN_GRACE_MS)]
    pub shutdown_grace_ms: u64,
}

/// A config value out of range; the message names the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for '--{flag}': must be {range}")]
pub struct InvalidConfig {
    pub flag: &'static str,
    pub value: String,
    pub range: &'static str,
}

fn is_kafka_topic(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn kafka_topic(name: &str) -> Result<String, String> {
    if is_kafka_topic(name) {
        Ok(name.to_owned())
    } else {
        Err("must be 1-249 bytes of A-Z a-z 0-9 . _ -".to_owned())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            grpc_listen: String::new(),
            reuse_port: false,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            drop_limit: DEFAULT_DROP_LIMIT,
            ping_interval_secs: DEFAULT_PING_INTERVAL_SECS,
            kafka_brokers: None,
            kafka_topic: DEFAULT_KAFKA_TOPIC.to_owned(),
            shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
            test_plant_grpc_mismatch: None,
        }
    }
}

impl Config {
    /// Parses the command line over the environment, exiting with clap's
    /// message on a bad value. An empty `FANOUT_*` variable counts as unset
    /// (as in the Go twin; clap alone would refuse it as an empty value), so
    /// this removes those from the process environment first: call it before
    /// any other thread runs.
    pub fn from_args_and_env() -> Self {
        let empty: Vec<_> = std::env::vars_os()
            .filter(|(key, value)| {
                key.to_str().is_some_and(|k| k.starts_with("FANOUT_")) && value.is_empty()
            })
            .map(|(key, _)| key)
            .collect();
        for key in empty {
            std::env::remove_var(key);
        }
        Self::parse()
    }

    /// The same checks clap applies to the flags.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let check = |ok: bool, flag, value: String, range| {
            if ok {
                Ok(())
            } else {
                Err(InvalidConfig { flag, value, range })
            }
        };
        check(
            (1..=MAX_QUEUE_CAPACITY).contains(&self.queue_capacity),
            "queue-capacity",
            self.queue_capacity.to_string(),
            "1-1048576",
        )?;
        check(
            (1..=MAX_DROP_LIMIT).contains(&self.drop_limit),
            "drop-limit",
            self.drop_limit.to_string(),
            "1-1073741824",
        )?;
        check(
            (1..=MAX_PING_INTERVAL_SECS).contains(&self.ping_interval_secs),
            "ping-interval-secs",
            self.ping_interval_secs.to_string(),
            "1-86400",
        )?;
        if let Some(brokers) = &self.kafka_brokers {
            check(
                !brokers.is_empty(),
                "kafka-brokers",
                brokers.clone(),
                "not empty",
            )?;
        }
        check(
            is_kafka_topic(&self.kafka_topic),
            "kafka-topic",
            self.kafka_topic.clone(),
            "1-249 bytes of A-Z a-z 0-9 . _ -",
        )
    }

    pub fn limits(&self) -> Limits {
        Limits {
            capacity: self.queue_capacity as usize,
            drop_limit: self.drop_limit,
        }
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs.into())
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("parallax-fanout").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_contract_and_default_impl() {
        // Assumes no FANOUT_* variable is set in the test environment.
        let config = parse(&[]).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listen, "127.0.0.1:8082");
        assert!(!config.reuse_port);
        assert_eq!(config.queue_capacity, 256);
        assert_eq!(config.drop_limit, 64);
        assert_eq!(config.ping_interval_secs, 30);
        assert_eq!(config.kafka_brokers, None);
        assert_eq!(config.kafka_topic, "notifications");
        assert_eq!(config.shutdown_grace_ms, 10_000);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn flags_parse() {
        let config = parse(&[
            "--listen",
            "0.0.0.0:9000",
            "--reuse-port",
            "--queue-capacity",
            "1",
            "--drop-limit",
            "2",
            "--ping-interval-secs",
            "3",
            "--kafka-brokers",
            "127.0.0.1:9092",
            "--kafka-topic",
            "n.1",
            "--shutdown-grace-ms",
            "0",
        ])
        .unwrap();
        assert!(config.reuse_port);
        assert_eq!(
            (
                config.queue_capacity,
                config.drop_limit,
                config.ping_interval_secs
            ),
            (1, 2, 3)
        );
        assert_eq!(config.kafka_brokers.as_deref(), Some("127.0.0.1:9092"));
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn reuse_port_takes_an_optional_boolean() {
        assert!(parse(&["--reuse-port"]).unwrap().reuse_port);
        assert!(parse(&["--reuse-port=true"]).unwrap().reuse_port);
        assert!(!parse(&["--reuse-port=false"]).unwrap().reuse_port);
        // A bare flag does not swallow the next argument.
        let config = parse(&["--reuse-port", "--drop-limit", "3"]).unwrap();
        assert!(config.reuse_port);
        assert_eq!(config.drop_limit, 3);
    }

    #[test]
    fn bad_values_are_refused_naming_the_flag() {
        for (args, flag) in [
            (&["--queue-capacity", "0"][..], "--queue-capacity"),
            (&["--queue-capacity", "x"], "--queue-capacity"),
            (&["--drop-limit", "0"], "--drop-limit"),
            (&["--drop-limit=-1"], "--drop-limit"),
            (&["--ping-interval-secs", "0"], "--ping-interval-secs"),
            (&["--kafka-brokers", ""], "--kafka-brokers"),
            (&["--kafka-topic", ""], "--kafka-topic"),
            (&["--kafka-topic", "a/b"], "--kafka-topic"),
            (&["--shutdown-grace-ms", "soon"], "--shutdown-grace-ms"),
            (&["--reuse-port=maybe"], "--reuse-port"),
            (&["--queue-capacity", "1048577"], "--queue-capacity"),
            (&["--drop-limit", "1073741825"], "--drop-limit"),
            (&["--ping-interval-secs", "86401"], "--ping-interval-secs"),
        ] {
            let err = parse(args).expect_err(&format!("{args:?} must be refused"));
            assert!(err.to_string().contains(flag), "{args:?}: {err}");
        }
    }

    #[test]
    fn validate_names_the_flag_of_a_config_built_in_code() {
        let config = Config {
            drop_limit: 0,
            ..Config::default()
        };
        let err = config.validate().unwrap_err();
        assert_eq!(err.flag, "drop-limit");
        assert_eq!(
            err.to_string(),
            "invalid value \"0\" for '--drop-limit': must be 1-1073741824"
        );
    }
}
