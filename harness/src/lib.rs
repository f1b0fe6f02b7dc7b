//! The Parallax harness as a library: what `parallax run` needs to run an
//! experiment on services it has never seen, one job per module, each
//! tested on its own. The `parallax` CLI is the front end.
//!
//! # Layout
//! - [`experiment`]: the experiment file (TOML), parsed and checked with
//!   errors that name the field and the fix; `docs/experiments.md` is its
//!   user guide.
//! - [`capture_source`]: `[traffic.capture]`, a recorded capture replayed
//!   in recorded order as the workload.
//! - [`grpc`]: `[traffic.grpc]`, unary gRPC calls from proto3 JSON
//!   templates, sent over HTTP/2 on the open model.
//! - [`traffic`]: weighted request templates and value generators, as an
//!   open-model workload for `parallax-loadgen`, with latency per route.
//! - [`child`]: one child-process type: its own process group, a log file,
//!   readiness by HTTP, log line or TCP, SIGTERM then SIGKILL, killed on drop
//!   (`parallax_process::child`, re-exported: the conformance suite and the
//!   proxy use it too and cannot depend on the harness).
//! - [`procstat`]: CPU-seconds and RSS of a process or a process group from
//!   `/proc` (`parallax_process::procstat`, re-exported likewise).
//! - [`prom`]: the Prometheus text format: samples, sums, histograms
//!   (`parallax_process::prom`, re-exported likewise).
//! - [`proxyconf`]: the configuration of a `parallax proxy` the harness
//!   starts, from the proxy's own types, validated before use.
//! - [`cgroup`]: each backend's process tree in a cgroup of its own, CPU
//!   time from the kernel's counter, peak memory as its processes' peak
//!   RSS (else `/proc`).
//! - [`interleave`]: the A B B A (or seeded random) order of direct-mode
//!   blocks, and the warm-up order that keeps them fair.
//! - [`kafka_topics`]: removes the Kafka topics a run created when no join
//!   reads them.
//! - [`capacity`]: rate ladders, SLOs and the capacity search.
//! - [`fleet`]: the worker-process fleet: many WebSocket sessions in worker
//!   processes, timing the frames they receive.
//! - [`wsrun`]: an experiment whose traffic holds WebSocket sessions: each
//!   backend alone, then the sessions mirrored through the proxy.
//! - [`rounds`]: the A B B A rounds a `parallax bench` ran itself, folded
//!   into the one results model (and why not every bench is a runner
//!   scenario).
//! - [`runner`]: runs an experiment (shadow through `parallax proxy`,
//!   direct A B B A, or A/A) into one result per rate step.

pub mod capacity;
pub mod capture_source;
pub mod cgroup;
pub mod experiment;
pub mod fleet;
pub mod grpc;
pub mod interleave;
pub mod kafka_topics;
pub mod proxyconf;
pub mod rounds;
pub mod runner;
pub mod traffic;
pub mod wsrun;

pub use parallax_process::{child, procstat, prom};
