//! What a capture holds, computed in one streaming pass: duration, requests
//! per route (method and path with ids collapsed, at most
//! [`MAX_ROUTES`] routes, the rest counted as `other`), statuses, WebSocket
//! messages, gaps, and the rate over time (per second, shown in at most
//! [`RATE_ROWS`] rows).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use crate::format::Record;
use crate::source::Source;
use crate::{Error, Tail};

/// Distinct routes kept; later ones count as `other`.
pub const MAX_ROUTES: usize = 50;
/// Rows of the rate-over-time table.
pub const RATE_ROWS: usize = 12;
/// Distinct connection ids counted exactly; past it the count is a floor.
const MAX_CONNS: usize = 1_000_000;

/// A capture's summary.
#[derive(Debug, Default)]
pub struct Summary {
    pub requests: u64,
    pub ws_messages: u64,
    /// WebSocket handshakes (requests answered 101).
    pub ws_sessions: u64,
    pub gaps: u64,
    pub dropped: u64,
    pub first_us: Option<u64>,
    pub last_us: u64,
    pub body_bytes: u64,
    pub routes: HashMap<String, u64>,
    pub other_routes: u64,
    pub statuses: BTreeMap<String, u64>,
    /// Requests per second of capture time.
    pub per_second: Vec<u64>,
    conns: HashSet<u64>,
    pub conns_capped: bool,
}

impl Summary {
    /// Reads all of `source`.
    pub fn of(source: &mut Source) -> Result<Self, Error> {
        let mut s = Summary::default();
        while let Some(record) = source.next_record()? {
            s.add(&record);
        }
        Ok(s)
    }

    pub fn add(&mut self, record: &Record) {
        let at = record.at_us();
        match record {
            Record::Meta(_) => return,
            Record::Request(r) => {
                self.requests += 1;
                self.body_bytes += r.body.len() as u64;
                let route = format!("{} {}", r.method, collapse(r.path()));
                if let Some(n) = self.routes.get_mut(&route) {
                    *n += 1;
                } else if self.routes.len() < MAX_ROUTES {
                    self.routes.insert(route, 1);
                } else {
                    self.other_routes += 1;
                }
                let status = r.status.map_or_else(|| "none".into(), |s| s.to_string());
                *self.statuses.entry(status).or_default() += 1;
                if r.status == Some(101) {
                    self.ws_sessions += 1;
                }
                if let Some(c) = r.conn {
                    if self.conns.len() < MAX_CONNS {
                        self.conns.insert(c);
                    } else {
                        self.conns_capped = true;
                    }
                }
                let sec = (at / 1_000_000) as usize;
                if sec < 31 * 86_400 {
                    if self.per_second.len() <= sec {
                        self.per_second.resize(sec + 1, 0);
                    }
                    self.per_second[sec] += 1;
                }
            }
            Record::Ws(_) => self.ws_messages += 1,
            Record::Gap { dropped, .. } => {
                self.gaps += 1;
                self.dropped += dropped;
            }
        }
        self.first_us = Some(self.first_us.map_or(at, |f| f.min(at)));
        self.last_us = self.last_us.max(at);
    }

    /// Seconds from the first record to the last.
    pub fn duration_secs(&self) -> f64 {
        self.first_us
            .map_or(0.0, |f| (self.last_us - f) as f64 / 1e6)
    }

    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The text `parallax capture info` prints.
    pub fn render(&self, source: &Source) -> String {
        let mut o = String::new();
        let formats: Vec<_> = source.formats().iter().map(|f| f.as_str()).collect();
        let _ = writeln!(o, "format:      {}", formats.join(", "));
        if let Some(m) = source.meta() {
            let _ = writeln!(
                o,
                "capture:     source {}{}, started {} (unix µs){}",
                m.source,
                m.service
                    .as_deref()
                    .map(|s| format!(", service {s}"))
                    .unwrap_or_default(),
                m.started_at_unix_us,
                if m.redacted.is_empty() {
                    String::new()
                } else {
                    format!(", redacted {}", m.redacted.join(" "))
                }
            );
        }
        let d = self.duration_secs();
        let _ = writeln!(
            o,
            "duration:    {d:.3} s, {} requests ({:.1}/s), {} body bytes",
            self.requests,
            if d > 0.0 {
                self.requests as f64 / d
            } else {
                0.0
            },
            self.body_bytes
        );
        let _ = writeln!(
            o,
            "connections: {}{}",
            self.conns.len(),
            if self.conns_capped { "+" } else { "" }
        );
        if self.ws_sessions + self.ws_messages > 0 {
            let _ = writeln!(
                o,
                "websocket:   {} sessions, {} messages",
                self.ws_sessions, self.ws_messages
            );
        }
        if self.gaps > 0 {
            let _ = writeln!(
                o,
                "gaps:        {} (the recorder dropped {} records)",
                self.gaps, self.dropped
            );
        }
        let skipped = source.gor_skipped();
        if skipped.malformed + skipped.responses_without_request > 0 {
            let _ = writeln!(
                o,
                "skipped:     {} GoReplay payloads that do not parse, {} responses whose request is not in the file (GoReplay writes those of requests it could not reassemble, e.g. sent with Expect: 100-continue)",
                skipped.malformed, skipped.responses_without_request
            );
        }
        for (path, tail) in source.tails() {
            if let Tail::Truncated { records, reason } = tail {
                let _ = writeln!(
                    o,
                    "truncated:   {} after {records} records: {reason}",
                    path.display()
                );
            }
        }
        let statuses: Vec<_> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        let _ = writeln!(o, "statuses:    {}", statuses.join(", "));
        let _ = writeln!(o, "routes:");
        let mut routes: Vec<_> = self.routes.iter().collect();
        routes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (route, n) in routes {
            let _ = writeln!(o, "  {n:>10}  {route}");
        }
        if self.other_routes > 0 {
            let _ = writeln!(
                o,
                "  {:>10}  other (more than {MAX_ROUTES} routes)",
                self.other_routes
            );
        }
        if !self.per_second.is_empty() {
            let _ = writeln!(o, "rate over time (requests/s):");
            let secs = self.per_second.len();
            let width = secs.div_ceil(RATE_ROWS).max(1);
            for (i, chunk) in self.per_second.chunks(width).enumerate() {
                let total: u64 = chunk.iter().sum();
                let peak = chunk.iter().max().copied().unwrap_or(0);
                let _ = writeln!(
                    o,
                    "  {:>7} s – {:>7} s  mean {:>10.1}  peak {:>8}",
                    i * width,
                    i * width + chunk.len(),
                    total as f64 / chunk.len() as f64,
                    peak
                );
            }
        }
        o
    }
}

/// A path with its id-like segments replaced by `{id}`: numbers, hex or
/// base64-ish tokens of 8 or more characters with a digit, UUIDs.
pub fn collapse(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if is_id(seg) {
            out.push_str("{id}");
        } else {
            out.push_str(seg);
        }
    }
    out
}

fn is_id(seg: &str) -> bool {
    if seg.is_empty() {
        return false;
    }
    if seg.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    seg.len() >= 8
        && seg.bytes().any(|b| b.is_ascii_digit())
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_collapse_and_words_stay() {
        assert_eq!(collapse("/v1/sessions/42"), "/v1/sessions/{id}");
        assert_eq!(
            collapse("/v1/users/3f2a9c1e-0b6d-4c7e-9a51-2d8f0c1b7e44/orders"),
            "/v1/users/{id}/orders"
        );
        assert_eq!(collapse("/v1/events"), "/v1/events");
        assert_eq!(collapse("/healthz"), "/healthz");
    }
}
