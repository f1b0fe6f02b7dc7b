//! Which binaries are under test: one per twin and contract, named by
//! environment variable.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Environment variable holding the Go ingest reference's binary.
pub const GO_BIN_ENV: &str = "PARALLAX_INGEST_GO_BIN";
/// Environment variable holding the Rust ingest twin's binary.
pub const RUST_BIN_ENV: &str = "PARALLAX_INGEST_RUST_BIN";
/// Environment variable holding the Go session cache's binary.
pub const CACHE_GO_BIN_ENV: &str = "PARALLAX_CACHE_GO_BIN";
/// Environment variable holding the Rust session cache's binary.
pub const CACHE_RUST_BIN_ENV: &str = "PARALLAX_CACHE_RUST_BIN";
/// Environment variable holding the Go notification fan-out's binary.
pub const FANOUT_GO_BIN_ENV: &str = "PARALLAX_FANOUT_GO_BIN";
/// Environment variable holding the Rust notification fan-out's binary.
pub const FANOUT_RUST_BIN_ENV: &str = "PARALLAX_FANOUT_RUST_BIN";

/// The contract a binary implements; it decides what the launcher wires up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contract {
    /// `docs/contract-ingest.md`: publishes to Kafka.
    Ingest,
    /// `docs/contract-cache.md`: no dependency.
    SessionCache,
    /// `docs/contract-fanout.md`: Kafka only when asked for.
    Fanout,
}

/// How the launcher wires a contract's binary to Kafka.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KafkaWiring {
    /// The binary has no Kafka flags.
    Never,
    /// Every run gets `--kafka-brokers` and the topic flag.
    Always { topic_flag: &'static str },
    /// Only runs that ask for it ([`ServiceBuilder::with_kafka`]) get them.
    ///
    /// [`ServiceBuilder::with_kafka`]: crate::service::ServiceBuilder::with_kafka
    OnRequest { topic_flag: &'static str },
}

impl Contract {
    /// The service's name in messages.
    pub fn label(self) -> &'static str {
        match self {
            Contract::Ingest => "ingest",
            Contract::SessionCache => "session-cache",
            Contract::Fanout => "fanout",
        }
    }

    /// The prefix of the environment variables the binaries read; the
    /// launcher clears them so the suite's flags are the whole configuration.
    pub fn env_prefix(self) -> &'static str {
        match self {
            Contract::Ingest => "INGEST_",
            Contract::SessionCache => "CACHE_",
            Contract::Fanout => "FANOUT_",
        }
    }

    /// Whether and how the binary gets `--kafka-brokers` and a topic.
    pub fn kafka_wiring(self) -> KafkaWiring {
        match self {
            Contract::Ingest => KafkaWiring::Always {
                topic_flag: "--topic",
            },
            Contract::SessionCache => KafkaWiring::Never,
            Contract::Fanout => KafkaWiring::OnRequest {
                topic_flag: "--kafka-topic",
            },
        }
    }

    /// The variables naming the Go and the Rust binary.
    fn bin_envs(self) -> [&'static str; 2] {
        match self {
            Contract::Ingest => [GO_BIN_ENV, RUST_BIN_ENV],
            Contract::SessionCache => [CACHE_GO_BIN_ENV, CACHE_RUST_BIN_ENV],
            Contract::Fanout => [FANOUT_GO_BIN_ENV, FANOUT_RUST_BIN_ENV],
        }
    }
}

/// One implementation of a contract: a name for messages and topic names,
/// the contract, and the executable to start.
#[derive(Clone, Debug)]
pub struct Implementation {
    pub name: &'static str,
    pub contract: Contract,
    pub binary: PathBuf,
}

impl Implementation {
    /// The Go ingest reference (`go-reference/cmd/ingest`), from `$PARALLAX_INGEST_GO_BIN`.
    pub fn go() -> Self {
        Self::from_env("go", Contract::Ingest, GO_BIN_ENV)
    }

    /// The Rust ingest twin (`rust-services/ingest`), from `$PARALLAX_INGEST_RUST_BIN`.
    pub fn rust() -> Self {
        Self::from_env("rust", Contract::Ingest, RUST_BIN_ENV)
    }

    /// The Go session cache (`go-reference/cmd/session-cache`), from
    /// `$PARALLAX_CACHE_GO_BIN`.
    pub fn go_cache() -> Self {
        Self::from_env("go", Contract::SessionCache, CACHE_GO_BIN_ENV)
    }

    /// The Rust session cache (`rust-services/session-cache`), from
    /// `$PARALLAX_CACHE_RUST_BIN`.
    pub fn rust_cache() -> Self {
        Self::from_env("rust", Contract::SessionCache, CACHE_RUST_BIN_ENV)
    }

    /// The Go notification fan-out (`go-reference/cmd/fanout`), from
    /// `$PARALLAX_FANOUT_GO_BIN`.
    pub fn go_fanout() -> Self {
        Self::from_env("go", Contract::Fanout, FANOUT_GO_BIN_ENV)
    }

    /// The Rust notification fan-out (`rust-services/fanout`), from
    /// `$PARALLAX_FANOUT_RUST_BIN`.
    pub fn rust_fanout() -> Self {
        Self::from_env("rust", Contract::Fanout, FANOUT_RUST_BIN_ENV)
    }

    /// Reads `var` and checks it names an executable file; panics with a
    /// message that says how to fix it otherwise.
    pub fn from_env(name: &'static str, contract: Contract, var: &str) -> Self {
        let label = contract.label();
        let [go_var, rust_var] = contract.bin_envs();
        let hint = format!(
            "build both twins and run the suite with scripts/test.sh, or set \
             {go_var} and {rust_var} to the {label} binaries yourself"
        );
        let binary = match std::env::var_os(var) {
            Some(value) if !value.is_empty() => PathBuf::from(value),
            _ => panic!("{var} is not set: the {name} {label} binary is unknown ({hint})"),
        };
        let executable = std::fs::metadata(&binary)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        assert!(
            executable,
            "{var}={} is not an executable file ({hint})",
            binary.display()
        );
        Implementation {
            name,
            contract,
            binary,
        }
    }
}
