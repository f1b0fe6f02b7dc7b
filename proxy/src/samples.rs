//! Mismatch samples: what the request was and what each backend answered,
//! redacted, kept as the last N per route for `GET /admin/mismatches` and
//! appended to a JSON-lines file.
//!
//! The file is written by one thread per file fed through a bounded channel:
//! the mirror tasks never block on disk, and when the writer falls
//! [`LOG_QUEUE`] lines behind, further samples skip the file (they are still
//! kept in memory) and a warning is logged.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;

use parallax_compare::value;
use parallax_compare::{encoding, grpc, protobuf, Difference, Outcome, Rules};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::redact::Redactor;

/// Lines the JSONL writer may fall behind before samples skip the file.
pub const LOG_QUEUE: usize = 1024;
/// Longest text body kept in a sample, in characters.
pub const TEXT_LIMIT: usize = 4096;

/// One mismatch.
#[derive(Debug, Serialize)]
pub struct Sample {
    pub at_unix_ms: u64,
    pub service: String,
    pub route: String,
    pub method: String,
    /// Path and query as the client sent them.
    pub target: String,
    pub outcome: Outcome,
    pub request: Message,
    pub primary: Message,
    pub shadow: Message,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secondary: Option<Message>,
    /// Differences counted against the shadow.
    pub mismatches: Vec<Difference>,
    /// Differences explained as noise by the secondary.
    pub noise: Vec<Difference>,
}

/// A request or answer in a sample.
#[derive(Debug, Serialize)]
pub struct Message {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Lower-cased names, in order, secrets redacted.
    pub headers: Vec<(String, String)>,
    /// Decoded from its `Content-Encoding`, then: JSON (and decoded
    /// protobuf) as JSON with configured paths redacted and every number
    /// exactly as sent (`12345678901234567891` is not rounded to an `f64`);
    /// other text as a string (cut at [`TEXT_LIMIT`] characters); anything
    /// else as `"<N bytes>"`.
    pub body: Box<RawValue>,
}

impl Message {
    /// `rules`: the route's, for its protobuf message and its decoding
    /// bound (`None`: the defaults, no protobuf message).
    pub fn new(
        status: Option<u16>,
        headers: &[(String, String)],
        body: &[u8],
        rules: Option<&Rules>,
        redactor: &Redactor,
    ) -> Self {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let media = header("content-type")
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let defaults = Rules::default();
        let rules = rules.unwrap_or(&defaults);
        let body = match encoding::decode(
            header("content-encoding"),
            body,
            rules.limits.max_decoded_bytes,
        ) {
            Ok(decoded) => render_body(&media, &decoded, rules, redactor),
            Err(e) => json_string(&format!("<{} bytes: {e}>", body.len())),
        };
        Self {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.clone(), redactor.header_value(k, v)))
                .collect(),
            body,
        }
    }
}

fn render_body(media: &str, body: &[u8], rules: &Rules, redactor: &Redactor) -> Box<RawValue> {
    let structured = if grpc::is_grpc(media) {
        // The stream of messages, each decoded when the route names its type.
        grpc::messages(body, None, rules.limits.max_decoded_bytes)
            .ok()
            .map(|messages| {
                value::Json::Array(
                    messages
                        .iter()
                        .map(|m| {
                            rules
                                .protobuf_message
                                .as_deref()
                                .and_then(|name| {
                                    let pool = rules
                                        .descriptors
                                        .as_ref()
                                        .unwrap_or_else(|| protobuf::project());
                                    protobuf::to_tree(pool, name, m)
                                })
                                .unwrap_or_else(|| {
                                    value::Json::String(format!("<{} bytes>", m.len()))
                                })
                        })
                        .collect(),
                )
            })
    } else if media == "application/json" || media.ends_with("+json") {
        value::parse(body, rules.limits.max_depth).ok()
    } else if media.contains("protobuf") {
        rules.protobuf_message.as_deref().and_then(|m| {
            let pool = rules
                .descriptors
                .as_ref()
                .unwrap_or_else(|| protobuf::project());
            protobuf::to_tree(pool, m, body)
        })
    } else {
        None
    };
    if let Some(mut json) = structured {
        redactor.tree(&mut json);
        if let Ok(raw) = RawValue::from_string(json.render(usize::MAX)) {
            return raw;
        }
    }
    match std::str::from_utf8(body) {
        Ok(text) => match text.char_indices().nth(TEXT_LIMIT) {
            Some((cut, _)) => json_string(&format!("{}…", &text[..cut])),
            None => json_string(text),
        },
        Err(_) => json_string(&format!("<{} bytes>", body.len())),
    }
}

fn json_string(s: &str) -> Box<RawValue> {
    RawValue::from_string(serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()))
        .expect("a JSON string is JSON")
}

/// The last samples of one route.
#[derive(Debug)]
pub struct SampleRing {
    capacity: usize,
    // A blocking mutex: push and clone-out only, never held across `.await`.
    items: Mutex<VecDeque<Arc<Sample>>>,
}

impl SampleRing {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            items: Mutex::new(VecDeque::with_capacity(capacity.min(64))),
        }
    }

    pub fn push(&self, sample: Arc<Sample>) {
        if self.capacity == 0 {
            return;
        }
        let mut items = self.items.lock();
        if items.len() == self.capacity {
            items.pop_front();
        }
        items.push_back(sample);
    }

    /// Oldest first.
    pub fn snapshot(&self) -> Vec<Arc<Sample>> {
        self.items.lock().iter().cloned().collect()
    }
}

/// The append-only JSON-lines file of one service.
#[derive(Debug, Clone)]
pub struct JsonlLog {
    path: PathBuf,
    tx: SyncSender<String>,
    /// Whether "falling behind" was already logged (once per burst).
    warned: Arc<AtomicBool>,
}

impl JsonlLog {
    /// Opens (creating, appending) `path` and starts its writer thread,
    /// which ends when the last handle is dropped.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = mpsc::sync_channel::<String>(LOG_QUEUE);
        let shown = path.display().to_string();
        std::thread::Builder::new()
            .name("parallax-mismatch-log".into())
            .spawn(move || write_lines(file, rx, &shown))?;
        Ok(Self {
            path: path.to_owned(),
            tx,
            warned: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Queues one sample; never blocks.
    pub fn append(&self, sample: &Sample) {
        let Ok(mut line) = serde_json::to_string(sample) else {
            return;
        };
        line.push('\n');
        match self.tx.try_send(line) {
            Ok(()) => self.warned.store(false, Ordering::Relaxed),
            Err(TrySendError::Full(_)) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(path = %self.path.display(), "mismatch log writer is behind; skipping samples");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn write_lines(mut file: File, rx: mpsc::Receiver<String>, path: &str) {
    let mut failed = false;
    while let Ok(line) = rx.recv() {
        // One write per line: with O_APPEND, lines of several writers to the
        // same file do not interleave.
        if let Err(e) = file.write_all(line.as_bytes()) {
            if !failed {
                tracing::error!(path, error = %e, "cannot append to the mismatch log");
                failed = true;
            }
        } else {
            failed = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parallax_compare::pointer::PointerGlob;

    fn sample(n: u64) -> Arc<Sample> {
        let r = Redactor::default();
        let msg = || Message::new(Some(200), &[], b"", None, &r);
        Arc::new(Sample {
            at_unix_ms: n,
            service: "s".into(),
            route: "other".into(),
            method: "GET".into(),
            target: "/".into(),
            outcome: Outcome::Mismatch,
            request: msg(),
            primary: msg(),
            shadow: msg(),
            secondary: None,
            mismatches: vec![],
            noise: vec![],
        })
    }

    #[test]
    fn the_ring_keeps_the_last_n() {
        let ring = SampleRing::new(2);
        for n in 0..5 {
            ring.push(sample(n));
        }
        let kept: Vec<_> = ring.snapshot().iter().map(|s| s.at_unix_ms).collect();
        assert_eq!(kept, [3, 4]);
    }

    #[test]
    fn bodies_render_by_media_type_with_redaction() {
        let r = Redactor::new(&[], &[PointerGlob::new("/pw")]);
        let headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("cookie".to_owned(), "sid=1".to_owned()),
        ];
        let m = Message::new(None, &headers, br#"{"pw":"x","a":1}"#, None, &r);
        assert_eq!(m.body.get(), r#"{"a":1,"pw":"[redacted]"}"#);
        assert_eq!(m.headers[1].1, "[redacted]");
        let bin = Message::new(None, &[], &[0xff, 0xfe], None, &r);
        assert_eq!(bin.body.get(), r#""<2 bytes>""#);
    }

    #[test]
    fn bodies_are_shown_decoded_with_every_number_exact() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(br#"{"id":12345678901234567891}"#).unwrap();
        let headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("content-encoding".to_owned(), "gzip".to_owned()),
        ];
        let m = Message::new(
            None,
            &headers,
            &gz.finish().unwrap(),
            None,
            &Redactor::default(),
        );
        assert_eq!(m.body.get(), r#"{"id":12345678901234567891}"#);
    }

    #[test]
    fn the_log_appends_one_line_per_sample() {
        let path = std::env::temp_dir().join(format!(
            "parallax-samples-{}-{:?}.jsonl",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&path);
        let log = JsonlLog::open(&path).unwrap();
        log.append(&sample(1));
        log.append(&sample(2));
        drop(log);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() == 2 {
                let first: serde_json::Value =
                    serde_json::from_str(text.lines().next().unwrap()).unwrap();
                assert_eq!(first["at_unix_ms"], 1);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{text}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = std::fs::remove_file(&path);
    }
}
