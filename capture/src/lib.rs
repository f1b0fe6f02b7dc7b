//! `parallax-capture`: recorded traffic, from the proxy or from other
//! tools, and its replay.
//!
//! A capture is a stream of records — HTTP requests with the primary's
//! status and latency, WebSocket messages, gaps where the recorder dropped
//! records — each stamped with its arrival time and client connection.
//! The proxy writes them (`[services.record]`, `parallax_proxy::record`);
//! `parallax capture info` summarises any capture and `parallax replay`
//! sends one to a target, open-model, at any speed.
//!
//! # For the experiments runner (a capture as a traffic source)
//! ```no_run
//! # async fn demo() -> Result<(), parallax_capture::Error> {
//! use parallax_capture::replay::{self, Pace, ReplayOptions, Target};
//! let files = vec!["traffic.000000.plxcap".into()];
//! let options = ReplayOptions { pace: Pace::Speed(10.0), ..ReplayOptions::default() };
//! // The schedule alone: (intended time, connection, request) items, streamed.
//! for item in replay::Schedule::open(&files, &options)?.take(3) {
//!     let item = item?;
//!     println!("{:?} {:?} {} {}", item.due, item.conn, item.request.method, item.request.target);
//! }
//! // Or the whole replay against one target, with its report.
//! let target = Target::parse("http://127.0.0.1:8080")?;
//! let report = replay::run(&files, &options, &target, |_progress| {}).await?;
//! println!("p99 {} us, late {}", report.latency_us.value_at_quantile(0.99), report.late);
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`format`]: records and their byte layout (`docs/capture-format.md`).
//! - [`writer`]: appending to a zstd stream with crash-safe flushes;
//!   size-rotated segments.
//! - [`stored`]: zstd frames of raw blocks, for records that do not
//!   compress.
//! - [`reader`]: streaming a capture back, a truncated tail reported.
//! - [`gor`], [`har`]: importers for GoReplay and HAR 1.2 files.
//! - [`source`]: any of the three formats, detected, several files in order.
//! - [`summary`]: what `parallax capture info` prints.
//! - [`rewrite`]: filters and rewrites applied on replay (headers, paths,
//!   fresh ids per loop).
//! - [`replay`]: the replay schedule and the open-model engine.
//! - [`wsreplay`]: WebSocket sessions replayed, their frames paired.

pub mod format;
pub mod gor;
pub mod har;
pub mod reader;
pub mod replay;
pub mod rewrite;
pub mod source;
pub mod stored;
pub mod summary;
pub mod writer;
pub mod wsreplay;

use std::path::Path;

pub use format::{Meta, Record, Request, WsMessage};
pub use reader::{CaptureReader, Tail};
pub use source::{Format, Source};
pub use writer::{CaptureWriter, Rotation, Segments};

/// Why a capture could not be read or replayed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Not a capture, an unsupported version, a malformed import.
    #[error("{0}")]
    Format(String),
    /// A replay setting that cannot be used.
    #[error("{0}")]
    Config(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Names the file in a format error.
    pub(crate) fn at(self, path: &Path) -> Self {
        match self {
            Error::Format(m) if !m.starts_with(&path.display().to_string()) => {
                Error::Format(format!("{}: {m}", path.display()))
            }
            e => e,
        }
    }
}
