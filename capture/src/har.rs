//! HAR 1.2 (HTTP Archive) files, as exported by browsers and proxies.
//!
//! Each `log.entries[]` becomes a [`Request`]: `request.method`, the path
//! and query of `request.url`, `request.headers` (HTTP/2 pseudo-headers
//! dropped), `request.postData.text` as the body (base64-decoded when the
//! exporter marked it `"encoding": "base64"`), `response.status` and
//! `time` (ms) as the primary's answer, and the `connection` field, when
//! present, as the connection id. Entries are ordered by
//! `startedDateTime`, times relative to the earliest. A HAR file is one
//! JSON document, so it is read whole (HAR exports are small next to
//! proxy captures).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;

use crate::format::Request;
use crate::Error;

#[derive(Deserialize)]
struct Har {
    log: Log,
}

#[derive(Deserialize)]
struct Log {
    #[serde(default)]
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    started_date_time: String,
    #[serde(default)]
    time: Option<f64>,
    request: HarRequest,
    #[serde(default)]
    response: Option<HarResponse>,
    #[serde(default)]
    connection: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HarRequest {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    post_data: Option<PostData>,
}

#[derive(Deserialize)]
struct NameValue {
    name: String,
    value: String,
}

#[derive(Deserialize)]
struct PostData {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    encoding: Option<String>,
}

#[derive(Deserialize)]
struct HarResponse {
    #[serde(default)]
    status: i64,
}

/// Reads a HAR document's entries as requests, in time order.
pub fn read(text: &[u8]) -> Result<Vec<Request>, Error> {
    let har: Har =
        serde_json::from_slice(text).map_err(|e| Error::Format(format!("not a HAR file: {e}")))?;
    let mut timed = Vec::with_capacity(har.log.entries.len());
    for (i, e) in har.log.entries.into_iter().enumerate() {
        let at = parse_rfc3339_us(&e.started_date_time).ok_or_else(|| {
            Error::Format(format!(
                "log.entries[{i}].startedDateTime: {:?} is not an ISO 8601 date-time",
                e.started_date_time
            ))
        })?;
        let body = match e.request.post_data {
            Some(PostData {
                text: Some(text),
                encoding,
            }) => {
                if encoding.as_deref() == Some("base64") {
                    base64::engine::general_purpose::STANDARD
                        .decode(text.as_bytes())
                        .map_err(|_| {
                            Error::Format(format!(
                                "log.entries[{i}].request.postData.text is not base64"
                            ))
                        })?
                        .into()
                } else {
                    Bytes::from(text)
                }
            }
            _ => Bytes::new(),
        };
        let headers = e
            .request
            .headers
            .into_iter()
            .filter(|h| !h.name.starts_with(':'))
            .map(|h| (h.name, h.value))
            .collect();
        let request = Request {
            at_us: 0,
            conn: e.connection.as_deref().map(hash_conn),
            method: e.request.method,
            target: target_of(&e.request.url),
            headers,
            body,
            body_truncated: false,
            status: e
                .response
                .and_then(|r| u16::try_from(r.status).ok())
                .filter(|s| *s > 0),
            latency_us: e.time.filter(|t| *t >= 0.0).map(|t| (t * 1000.0) as u64),
        };
        timed.push((at, i, request));
    }
    timed.sort_by_key(|(at, i, _)| (*at, *i));
    let first = timed.first().map_or(0, |(at, _, _)| *at);
    Ok(timed
        .into_iter()
        .map(|(at, _, mut r)| {
            r.at_us = (at - first) as u64;
            r
        })
        .collect())
}

fn hash_conn(c: &str) -> u64 {
    let mut h = DefaultHasher::new();
    c.hash(&mut h);
    h.finish()
}

/// The origin-form target (path and query) of an absolute URL.
fn target_of(url: &str) -> String {
    let rest = match url.find("://") {
        Some(i) => &url[i + 3..],
        None => return url.to_owned(),
    };
    let mut t = match rest.find('/') {
        Some(i) => rest[i..].to_owned(),
        None => "/".to_owned(),
    };
    if let Some(i) = t.find('#') {
        t.truncate(i);
    }
    t
}

/// `2026-12-05T10:15:00.123+01:00` (or `Z`) as µs since the Unix epoch.
pub fn parse_rfc3339_us(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        std::str::from_utf8(b.get(r)?).ok()?.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = &s[start..i];
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
        micros = digits.parse().ok()?;
    }
    let offset_secs = match b.get(i) {
        Some(b'Z' | b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let o = oh * 3600 + om * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        None => 0,
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    Some(secs * 1_000_000 + micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_with_offsets_and_fractions() {
        assert_eq!(parse_rfc3339_us("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_us("1970-01-01T01:00:00.5+01:00"),
            Some(500_000)
        );
        assert_eq!(
            parse_rfc3339_us("2026-12-05T00:00:00.000Z"),
            Some(1_796_428_800_000_000)
        );
        assert_eq!(parse_rfc3339_us("yesterday"), None);
    }

    #[test]
    fn entries_become_requests_in_time_order() {
        let har = br#"{"log":{"version":"1.2","creator":{"name":"t","version":"1"},"entries":[
          {"startedDateTime":"2026-12-05T10:00:01.000Z","time":12.5,"connection":"7",
           "request":{"method":"POST","url":"http://h:1/v1/events?x=1","httpVersion":"HTTP/1.1",
             "headers":[{"name":"Content-Type","value":"application/json"},{"name":":authority","value":"h"}],
             "postData":{"mimeType":"application/json","text":"{\"a\":1}"}},
           "response":{"status":202}},
          {"startedDateTime":"2026-12-05T10:00:00.000Z","time":1,
           "request":{"method":"GET","url":"https://h/v1/sessions/9","headers":[]},
           "response":{"status":0}}
        ]}}"#;
        let reqs = read(har).unwrap();
        assert_eq!(reqs[0].method, "GET");
        assert_eq!(reqs[0].status, None);
        assert_eq!(reqs[1].at_us, 1_000_000);
        assert_eq!(reqs[1].target, "/v1/events?x=1");
        assert_eq!(&reqs[1].body[..], b"{\"a\":1}");
        assert_eq!(reqs[1].headers.len(), 1);
        assert_eq!(reqs[1].status, Some(202));
        assert_eq!(reqs[1].latency_us, Some(12_500));
        assert!(reqs[1].conn.is_some());
    }
}
