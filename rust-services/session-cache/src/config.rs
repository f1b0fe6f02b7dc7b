//! Command-line and environment configuration (flags win over env vars).
//!
//! clap checks every range while parsing and exits non-zero with a message
//! naming the flag (`invalid value '0' for '--shards <N>'`), as the contract
//! asks. [`Config::validate`] repeats the checks for configs built in code
//! (tests, `parallax run`), so [`run`](crate::run) never starts on one clap
//! would have refused.

use std::time::Duration;

use clap::Parser;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";
pub const DEFAULT_CAPACITY_BYTES: u64 = 256 * 1024 * 1024;
pub const DEFAULT_SHARDS: u32 = 64;
pub const MAX_SHARDS: u32 = 65_536;
pub const DEFAULT_TTL_SECS: u32 = 3600;
/// The longest TTL, for `--default-ttl-secs` and `X-Session-TTL` alike: 7 days.
pub const MAX_TTL_SECS: u32 = 604_800;
pub const DEFAULT_SWEEP_INTERVAL_MS: u64 = 1000;
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;

/// The session cache (Rust twin).
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "parallax-session-cache", version, about)]
pub struct Config {
    /// Address to serve HTTP on.
    #[arg(long, env = "CACHE_LISTEN", value_name = "HOST:PORT", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// Total accounted bytes the cache may hold, split evenly over shards.
    #[arg(long, env = "CACHE_CAPACITY_BYTES", value_name = "N", default_value_t = DEFAULT_CAPACITY_BYTES,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub capacity_bytes: u64,
    /// Number of shards (each with its own lock and LRU list), 1-65536.
    #[arg(long, env = "CACHE_SHARDS", value_name = "N", default_value_t = DEFAULT_SHARDS,
          value_parser = clap::value_parser!(u32).range(1..=MAX_SHARDS as i64))]
    pub shards: u32,
    /// TTL of a PUT without `X-Session-TTL`, in seconds, 1-604800.
    #[arg(long, env = "CACHE_DEFAULT_TTL_SECS", value_name = "N", default_value_t = DEFAULT_TTL_SECS,
          value_parser = clap::value_parser!(u32).range(1..=MAX_TTL_SECS as i64))]
    pub default_ttl_secs: u32,
    /// Period of the background expiry sweep, in milliseconds (at least 1).
    #[arg(long, env = "CACHE_SWEEP_INTERVAL_MS", value_name = "N", default_value_t = DEFAULT_SWEEP_INTERVAL_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub sweep_interval_ms: u64,
    /// How long in-flight requests may run after SIGTERM/SIGINT, in milliseconds.
    #[arg(long, env = "CACHE_SHUTDOWN_GRACE_MS", value_name = "N", default_value_t = DEFAULT_SHUTDOWN_GRACE_MS)]
    pub shutdown_grace_ms: u64,
    /// Fault injection for the harness's own tests (a deliberately
    /// regressed build for `parallax gate`): every answer waits this many
    /// microseconds first. Hidden; 0 everywhere else.
    #[arg(long, hide = true, default_value_t = 0)]
    pub debug_delay_us: u64,
    /// Fault injection for the gate's sensitivity test: every request
    /// first burns this many microseconds of its thread's CPU time
    /// (`crate::faults`). Hidden; 0 everywhere else.
    #[arg(long, hide = true, default_value_t = 0)]
    pub debug_extra_cpu_us: u64,
}

/// A config value out of range; the message names the flag and the range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value} for '--{flag}': must be {range}")]
pub struct InvalidConfig {
    pub flag: &'static str,
    pub value: u64,
    pub range: &'static str,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            capacity_bytes: DEFAULT_CAPACITY_BYTES,
            shards: DEFAULT_SHARDS,
            default_ttl_secs: DEFAULT_TTL_SECS,
            sweep_interval_ms: DEFAULT_SWEEP_INTERVAL_MS,
            shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
            debug_delay_us: 0,
            debug_extra_cpu_us: 0,
        }
    }
}

impl Config {
    /// The same range checks clap applies to the flags.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let check = |ok: bool, flag, value: u64, range| {
            if ok {
                Ok(())
            } else {
                Err(InvalidConfig { flag, value, range })
            }
        };
        check(
            self.capacity_bytes >= 1,
            "capacity-bytes",
            self.capacity_bytes,
            "at least 1",
        )?;
        check(
            (1..=MAX_SHARDS).contains(&self.shards),
            "shards",
            self.shards.into(),
            "1-65536",
        )?;
        check(
            (1..=MAX_TTL_SECS).contains(&self.default_ttl_secs),
            "default-ttl-secs",
            self.default_ttl_secs.into(),
            "1-604800",
        )?;
        check(
            self.sweep_interval_ms >= 1,
            "sweep-interval-ms",
            self.sweep_interval_ms,
            "at least 1",
        )
    }

    pub fn default_ttl(&self) -> Duration {
        Duration::from_secs(self.default_ttl_secs.into())
    }

    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.sweep_interval_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(
            std::iter::once("parallax-session-cache").chain(args.iter().copied()),
        )
    }

    #[test]
    fn defaults_match_the_contract_and_default_impl() {
        // Assumes no CACHE_* variable is set in the test environment.
        let config = parse(&[]).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listen, "127.0.0.1:8081");
        assert_eq!(config.capacity_bytes, 268_435_456);
        assert_eq!(config.shards, 64);
        assert_eq!(config.default_ttl_secs, 3600);
        assert_eq!(config.sweep_interval_ms, 1000);
        assert_eq!(config.shutdown_grace_ms, 10_000);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn out_of_range_flags_are_refused_naming_the_flag() {
        for (args, flag) in [
            (&["--shards", "0"][..], "--shards"),
            (&["--shards", "65537"], "--shards"),
            (&["--default-ttl-secs", "0"], "--default-ttl-secs"),
            (&["--default-ttl-secs", "604801"], "--default-ttl-secs"),
            (&["--capacity-bytes", "0"], "--capacity-bytes"),
            (&["--capacity-bytes=-1"], "--capacity-bytes"),
            (&["--sweep-interval-ms", "0"], "--sweep-interval-ms"),
            (&["--shutdown-grace-ms", "soon"], "--shutdown-grace-ms"),
        ] {
            let err = parse(args).expect_err(&format!("{args:?} must be refused"));
            assert!(err.to_string().contains(flag), "{args:?}: {err}");
        }
    }

    #[test]
    fn range_edges_are_accepted() {
        let config = parse(&[
            "--shards",
            "65536",
            "--default-ttl-secs",
            "604800",
            "--capacity-bytes",
            "1",
            "--sweep-interval-ms",
            "1",
        ])
        .unwrap();
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn fault_flags_parse_but_stay_out_of_help() {
        let config = parse(&["--debug-extra-cpu-us", "25", "--debug-delay-us", "7"]).unwrap();
        assert_eq!(config.debug_extra_cpu_us, 25);
        assert_eq!(config.debug_delay_us, 7);
        let help = parse(&["--help"]).unwrap_err().to_string();
        assert!(help.contains("--shards"), "{help}");
        assert!(!help.contains("debug"), "{help}");
    }

    #[test]
    fn validate_names_the_flag_of_a_config_built_in_code() {
        let config = Config {
            shards: 0,
            ..Config::default()
        };
        let err = config.validate().unwrap_err();
        assert_eq!(err.flag, "shards");
        assert_eq!(
            err.to_string(),
            "invalid value 0 for '--shards': must be 1-65536"
        );
    }
}
