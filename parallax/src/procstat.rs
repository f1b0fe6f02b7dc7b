//! CPU-seconds and RSS from `/proc`: the harness's one reader
//! (`parallax_harness::procstat`), under the name the CLI's modules use.

pub use parallax_harness::procstat::{
    cpu_model, load_average, machine_busy_seconds, read, wait_for_quiet, Usage,
};
