//! CPU-seconds and RSS from `/proc`: the harness's one reader
//! (`parallax_harness::procstat`), under the name the CLI's modules use.

pub use parallax_harness::procstat::{machine_busy_seconds, read, Usage};
