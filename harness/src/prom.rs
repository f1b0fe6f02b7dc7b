//! The Prometheus text exposition format, read: the one parser, which lives
//! in [`parallax_common::prom`] so that the load generator (which the
//! harness depends on, and so cannot depend on the harness) reads the
//! same format the same way. Re-exported here for the harness's modules.

pub use parallax_common::prom::*;
