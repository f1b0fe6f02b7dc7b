//! Which binaries are under test: one per twin, named by environment variable.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Environment variable holding the Go reference's binary.
pub const GO_BIN_ENV: &str = "PARALLAX_INGEST_GO_BIN";
/// Environment variable holding the Rust twin's binary.
pub const RUST_BIN_ENV: &str = "PARALLAX_INGEST_RUST_BIN";

/// One implementation of the ingestion contract: a name for messages and topic
/// names, and the executable to start.
#[derive(Clone, Debug)]
pub struct Implementation {
    pub name: &'static str,
    pub binary: PathBuf,
}

impl Implementation {
    /// The Go reference (`go-reference/cmd/ingest`), from `$PARALLAX_INGEST_GO_BIN`.
    pub fn go() -> Self {
        Self::from_env("go", GO_BIN_ENV)
    }

    /// The Rust twin (`rust-services/ingest`), from `$PARALLAX_INGEST_RUST_BIN`.
    pub fn rust() -> Self {
        Self::from_env("rust", RUST_BIN_ENV)
    }

    /// Reads `var` and checks it names an executable file; panics with a
    /// message that says how to fix it otherwise.
    pub fn from_env(name: &'static str, var: &str) -> Self {
        let hint = "build both twins and run the suite with scripts/test.sh, \
                    or set PARALLAX_INGEST_GO_BIN and PARALLAX_INGEST_RUST_BIN \
                    to the ingest binaries yourself";
        let binary = match std::env::var_os(var) {
            Some(value) if !value.is_empty() => PathBuf::from(value),
            _ => panic!("{var} is not set: the {name} ingest binary is unknown ({hint})"),
        };
        let executable = std::fs::metadata(&binary)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        assert!(
            executable,
            "{var}={} is not an executable file ({hint})",
            binary.display()
        );
        Implementation { name, binary }
    }
}
