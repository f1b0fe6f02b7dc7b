//! Samples of what differed: the last N in memory (for the summary and
//! `GET /admin/kafka-mismatches`) and, optionally, every one appended to a
//! JSON-lines file.
//!
//! The file is written from the join loop, one `write` per line on a file
//! opened for appending (no buffer to lose on a crash, lines of concurrent
//! writers do not interleave). A failed write is logged once and the file
//! is given up; the in-memory samples and counts go on.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parallax_compare::{protobuf, Difference};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;

use crate::compare::render;
use crate::join::Unpaired;
use crate::record::Record;
use crate::report::Class;

/// One record that was different, missing or extra.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub at_unix_ms: u64,
    pub event_id: String,
    pub result: Class,
    /// For a record left without a partner: `expired`, `overflow` or `end`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpaired: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<RecordView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<RecordView>,
    /// Empty for a missing or extra record.
    pub differences: Vec<Difference>,
}

/// A record as a sample shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordView {
    pub partition: i32,
    pub offset: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    pub key: Option<String>,
    pub headers: Vec<(String, String)>,
    /// The decoded message as proto3 JSON, or `"<N bytes>"`.
    pub value: Value,
}

impl RecordView {
    pub fn new(record: &Record, message: Option<&str>) -> Self {
        let value = message
            .and_then(|m| protobuf::to_json(m, &record.value))
            .unwrap_or_else(|| Value::String(format!("<{} bytes>", record.value.len())));
        RecordView {
            partition: record.partition,
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
            key: record.key.as_deref().map(render),
            headers: record
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), render(v)))
                .collect(),
            value,
        }
    }
}

impl Sample {
    pub fn now_unix_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default()
    }

    pub fn unpaired_label(why: Unpaired) -> &'static str {
        match why {
            Unpaired::Expired => "expired",
            Unpaired::Overflow => "overflow",
            Unpaired::End => "end",
        }
    }
}

/// `different e-2: /attributes/region ("eu" vs -)`, or
/// `missing_in_shadow e-3 (primary 1@17, expired)`.
impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.result.as_str(), self.event_id)?;
        if self.differences.is_empty() {
            let (side, view) = match (&self.primary, &self.shadow) {
                (Some(v), _) => ("primary", v),
                (None, Some(v)) => ("shadow", v),
                (None, None) => return Ok(()),
            };
            write!(f, " ({side} {}@{}", view.partition, view.offset)?;
            if let Some(why) = self.unpaired {
                write!(f, ", {why}")?;
            }
            return write!(f, ")");
        }
        let parts: Vec<String> = self
            .differences
            .iter()
            .map(|d| {
                format!(
                    "{} ({} vs {})",
                    d.path,
                    d.primary.as_deref().unwrap_or("-"),
                    d.shadow.as_deref().unwrap_or("-")
                )
            })
            .collect();
        write!(f, ": {}", parts.join(", "))
    }
}

/// The last `capacity` samples, shared between the join loop and the admin
/// listener. A `parking_lot` mutex: held only to push or clone, never across
/// an `.await`.
#[derive(Debug, Clone)]
pub struct SampleRing {
    inner: Arc<Mutex<VecDeque<Sample>>>,
    capacity: usize,
}

impl SampleRing {
    pub fn new(capacity: usize) -> Self {
        SampleRing {
            inner: Arc::new(Mutex::new(VecDeque::with_capacity(capacity.min(1024)))),
            capacity,
        }
    }

    pub fn push(&self, sample: Sample) {
        if self.capacity == 0 {
            return;
        }
        let mut ring = self.inner.lock();
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(sample);
    }

    /// Oldest first.
    pub fn snapshot(&self) -> Vec<Sample> {
        self.inner.lock().iter().cloned().collect()
    }
}

/// The append-only JSON-lines file of samples.
#[derive(Debug)]
pub struct SampleFile {
    path: PathBuf,
    file: Option<File>,
}

impl SampleFile {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(SampleFile {
            path: path.to_owned(),
            file: Some(file),
        })
    }

    pub fn append(&mut self, sample: &Sample) {
        let Some(file) = &mut self.file else {
            return;
        };
        let mut line = serde_json::to_string(sample).expect("samples serialise");
        line.push('\n');
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot append to the samples file; no more samples go there");
            self.file = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parallax_compare::Kind;

    fn sample(id: &str) -> Sample {
        Sample {
            at_unix_ms: 1,
            event_id: id.into(),
            result: Class::Different,
            unpaired: None,
            primary: None,
            shadow: None,
            differences: vec![Difference {
                path: "/attributes/region".into(),
                kind: Kind::Missing,
                primary: Some("\"eu\"".into()),
                shadow: None,
            }],
        }
    }

    #[test]
    fn the_ring_keeps_the_last_samples_oldest_first() {
        let ring = SampleRing::new(2);
        for id in ["a", "b", "c"] {
            ring.push(sample(id));
        }
        let ids: Vec<String> = ring.snapshot().into_iter().map(|s| s.event_id).collect();
        assert_eq!(ids, ["b", "c"]);
    }

    #[test]
    fn a_sample_reads_as_one_line_naming_the_field() {
        assert_eq!(
            sample("e-2").to_string(),
            r#"different e-2: /attributes/region ("eu" vs -)"#
        );
    }

    #[test]
    fn the_file_gets_one_json_object_per_line() {
        let path = std::env::temp_dir().join(format!(
            "parallax-kafka-diff-samples-{}.jsonl",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let mut file = SampleFile::open(&path).unwrap();
        file.append(&sample("a"));
        file.append(&sample("b"));
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["event_id"], "b");
        assert_eq!(lines[0]["differences"][0]["path"], "/attributes/region");
    }
}
