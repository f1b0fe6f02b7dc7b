//! Processes seen from outside: starting one and knowing when it is ready,
//! stopping it, and reading what it costs from `/proc`. Said once here for
//! every crate that starts or watches a process.
//!
//! Why a crate of its own, at the bottom of the workspace: the harness, the
//! conformance suite, the load generator and the proxy all need these jobs, and they cannot
//! share them through one another — the harness depends on the proxy, the
//! proxy's tests depend on the conformance suite, and the conformance suite
//! is black-box and must not link any of our implementation (so not
//! `parallax-common`, the twins' shared service layer, either). This crate
//! depends on nothing of ours and on little else (`regex`, `thiserror`),
//! so everything can depend on it. `parallax_harness::{child, procstat,
//! prom}` re-export its modules under the names the harness's callers use.
//!
//! # Layout
//! - [`child`]: one child-process type: a log file (and optionally the
//!   caller's stderr), readiness by HTTP, log line, TCP or a `listening on
//!   HOST:PORT` line, SIGTERM then SIGKILL, killed on drop; a free loopback
//!   port to start one on.
//! - [`procstat`]: CPU-seconds and RSS of a process or a process group, the
//!   machine's busy time, and which process listens on a TCP port, from
//!   `/proc`.
//! - [`prom`]: the Prometheus text format, read — a process's `/metrics`
//!   page (samples, sums, histograms and their quantiles).

pub mod child;
pub mod procstat;
pub mod prom;
