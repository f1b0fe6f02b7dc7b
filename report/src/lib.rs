//! What a Parallax run produced, how it is shown, and how it is judged.
//!
//! `parallax run` fills in a [`RunResults`] and saves it as `results.json`
//! (schema `parallax.results/v2`, documented in `docs/results-schema.md`).
//! This crate is the only place that knows that format: the runner writes it,
//! the renderers turn it into a terminal table or a self-contained HTML
//! report, and the gate (`parallax gate`) decides whether a candidate broke a
//! budget — using confidence intervals over the recorded histograms so that
//! noise does not fail a build.
//!
//! # Layout
//! - [`results`]: the schema types, loading and saving with errors that name
//!   the file and the field.
//! - [`histogram`]: HDR histograms as base64 V2 + DEFLATE strings.
//! - [`stats`]: bootstrap intervals of quantile ratios and the Mann-Whitney U
//!   test, on histogram buckets.
//! - [`table`]: the side-by-side terminal table per scenario.
//! - [`html`]: the self-contained HTML report (inline CSS and SVG plots).
//! - [`gate`]: budgets, the checks of `parallax gate` and the verdict table.
//! - [`synthetic`]: seeded synthetic runs for tests and sample reports.

pub mod gate;
pub mod histogram;
pub mod html;
pub mod results;
pub mod stats;
pub mod synthetic;
pub mod table;

use std::path::{Path, PathBuf};

pub use results::{
    BackendCapacity, BackendResult, Better, BudgetSpec, Capacity, CapacityProbe, Comparison,
    ExtraMetric, KafkaComparison, LatencySummary, Machine, Mode, Noise, PathDifference, Role,
    RouteBackend, RouteResult, RunResults, ScenarioResult, UsageSample, Window, SCHEMA, SCHEMA_V1,
};

/// Why a results file or histogram could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The document is not JSON, or a field has the wrong shape.
    #[error("{}field `{field}`: {message}", in_path(path))]
    Parse {
        /// The file, when known.
        path: Option<PathBuf>,
        /// JSON path of the offending field (`scenarios[0].backends[1].requests`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The `schema` tag is missing or not [`SCHEMA`].
    #[error("{}field `schema`: found {}, expected \"{SCHEMA}\" (or \"{SCHEMA_V1}\")", in_path(path), found.as_deref().map_or("nothing".to_owned(), |s| format!("{s:?}")))]
    Schema {
        /// The file, when known.
        path: Option<PathBuf>,
        /// The tag found, if any.
        found: Option<String>,
    },
    /// A serialised histogram could not be decoded.
    #[error("histogram: {0}")]
    Histogram(String),
}

fn in_path(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map_or_else(String::new, |p| format!("{}: ", p.display()))
}

impl Error {
    /// Attaches the file name to a parse or schema error.
    pub(crate) fn in_file(self, file: &Path) -> Self {
        match self {
            Error::Parse { field, message, .. } => Error::Parse {
                path: Some(file.to_owned()),
                field,
                message,
            },
            Error::Schema { found, .. } => Error::Schema {
                path: Some(file.to_owned()),
                found,
            },
            other => other,
        }
    }
}
