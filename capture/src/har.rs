//! HAR 1.2 (HTTP Archive) files, as exported by browsers and proxies.
//!
//! Each `log.entries[]` becomes a [`Request`]: `request.method`, the path
//! and query of `request.url`, `request.headers` (HTTP/2 pseudo-headers
//! dropped), `request.postData` as the body, `response.status` and `time`
//! less `timings.receive` (ms: the time to the answer's head) as the
//! primary's answer, and the `connection` field (a string or a number),
//! when present, as the connection id. `CONNECT` entries (a proxy's TLS
//! tunnels) are left out. Entries are ordered by `startedDateTime`, times
//! relative to the earliest. A HAR file is one JSON document, so it is
//! read whole (HAR exports are small next to proxy captures).
//!
//! The body is `postData.text` — base64-decoded when the exporter marked it
//! `"encoding": "base64"` — or, without a `text`, built from
//! `postData.params` (`application/x-www-form-urlencoded`, or
//! `multipart/form-data` with the boundary of the content type). Exporters
//! write bytes that are not text in two ways this reads back exactly:
//! mitmproxy decodes a body without a charset as Latin-1 (so a `text`
//! whose characters are all below U+0100, with as many characters as
//! `bodySize` says bytes, is those bytes), and Python's `surrogateescape`
//! writes a byte that is not UTF-8 as a lone surrogate `\udcXX` (which a
//! strict JSON reader refuses; here it is the byte again).

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};

use base64::Engine;
use bytes::Bytes;
use serde::de::{Deserializer, Visitor};
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
    timings: Option<Timings>,
    /// A string in the specification; some exporters write a number.
    #[serde(default)]
    connection: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HarRequest {
    method: Text,
    url: Text,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    post_data: Option<PostData>,
    #[serde(default)]
    body_size: Option<f64>,
}

#[derive(Deserialize)]
struct NameValue {
    name: Text,
    #[serde(default)]
    value: Option<Text>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostData {
    #[serde(default)]
    mime_type: Option<Text>,
    #[serde(default)]
    text: Option<Text>,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    params: Vec<Param>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Param {
    name: Text,
    #[serde(default)]
    value: Option<Text>,
    #[serde(default)]
    file_name: Option<Text>,
    #[serde(default)]
    content_type: Option<Text>,
}

#[derive(Deserialize)]
struct HarResponse {
    #[serde(default)]
    status: i64,
}

#[derive(Deserialize)]
struct Timings {
    #[serde(default)]
    receive: Option<f64>,
}

/// A JSON string as bytes. A lone surrogate U+DC80..U+DCFF — how Python's
/// `surrogateescape` (mitmproxy) writes a byte that is not UTF-8 — is that
/// byte again; a strict reader would refuse the whole file.
#[derive(Default)]
struct Text(Vec<u8>);

impl Text {
    /// As a string: UTF-8, or else each byte a Latin-1 character.
    fn string(self) -> String {
        String::from_utf8(self.0).unwrap_or_else(|e| latin1(e.as_bytes()))
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Text, E> {
                Ok(Text(unescape_surrogates(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.as_bytes().to_vec()))
            }
        }
        // serde_json gives a string's bytes as they are, lone surrogates
        // encoded as UTF-8 would encode them (ED B2 80 .. ED B3 BF for
        // U+DC80 .. U+DCFF).
        d.deserialize_bytes(V)
    }
}

fn unescape_surrogates(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if let [0xED, b1 @ (0xB2 | 0xB3), b2 @ 0x80..=0xBF, ..] = v[i..] {
            out.push(((b1 & 0x01) << 6) | (b2 & 0x3F) | 0x80);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    out
}

/// Reads a HAR document's entries as requests, in time order.
pub fn read(text: &[u8]) -> Result<Vec<Request>, Error> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
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
        let method = e.request.method.string();
        if method.eq_ignore_ascii_case("CONNECT") {
            continue;
        }
        let headers: Vec<(String, String)> = e
            .request
            .headers
            .into_iter()
            .map(|h| (h.name.string(), h.value.unwrap_or_default().string()))
            .filter(|(name, _)| !name.starts_with(':'))
            .collect();
        let declared = e
            .request
            .body_size
            .filter(|n| *n > 0.0)
            .map(|n| n as usize)
            .or_else(|| {
                headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse().ok())
            });
        let body = match e.request.post_data {
            Some(pd) => body_of(pd, &headers, declared).map_err(|what| {
                Error::Format(format!("log.entries[{i}].request.postData{what}"))
            })?,
            None => Bytes::new(),
        };
        let body = encoded_as_sent(body, &headers);
        let latency_ms = e.time.filter(|t| *t >= 0.0).map(|t| {
            let receive = e.timings.as_ref().and_then(|t| t.receive).unwrap_or(0.0);
            if receive > 0.0 && receive <= t {
                t - receive
            } else {
                t
            }
        });
        let request = Request {
            at_us: 0,
            conn: e.connection.as_ref().and_then(conn_of),
            method,
            target: target_of(&e.request.url.string()),
            headers,
            body,
            body_truncated: false,
            status: e
                .response
                .and_then(|r| u16::try_from(r.status).ok())
                .filter(|s| *s > 0),
            latency_us: latency_ms.map(|t| (t * 1000.0) as u64),
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

/// The body of `postData`; `Err` names the field that cannot be read.
/// The body as the client sent it, when its headers say `Content-Encoding:
/// gzip` or `deflate` and the exporter wrote it decoded (mitmproxy does):
/// encoded again, so the target is not sent plain bytes labelled gzip. A
/// body already in that coding (gzip's magic; zlib's header) is kept.
fn encoded_as_sent(body: Bytes, headers: &[(String, String)]) -> Bytes {
    use std::io::Write;
    let coding = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-encoding"))
        .map(|(_, v)| v.trim().to_ascii_lowercase());
    let already = |b: &[u8]| match coding.as_deref() {
        Some("gzip" | "x-gzip") => b.starts_with(&[0x1f, 0x8b]),
        Some("deflate") => {
            b.len() >= 2 && b[0] & 0x0f == 8 && u16::from_be_bytes([b[0], b[1]]).is_multiple_of(31)
        }
        _ => true,
    };
    if body.is_empty() || already(&body) {
        return body;
    }
    let encoded = match coding.as_deref() {
        Some("deflate") => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&body).and_then(|_| e.finish())
        }
        _ => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&body).and_then(|_| e.finish())
        }
    };
    encoded.map(Bytes::from).unwrap_or(body)
}

fn body_of(
    pd: PostData,
    headers: &[(String, String)],
    declared: Option<usize>,
) -> Result<Bytes, &'static str> {
    let Some(Text(text)) = pd.text else {
        let mime = pd
            .mime_type
            .map(Text::string)
            .filter(|m| !m.is_empty())
            .or_else(|| {
                headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_default();
        return Ok(params_body(&mime, pd.params).into());
    };
    if pd.encoding.as_deref() == Some("base64") {
        let clean: Vec<u8> = text
            .into_iter()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        return base64::engine::general_purpose::STANDARD
            .decode(&clean)
            .map(Bytes::from)
            .map_err(|_| ".text is not base64");
    }
    // Bytes written as Latin-1 characters (mitmproxy, for a body without a
    // charset that is not JSON).
    if let (Ok(s), Some(n)) = (std::str::from_utf8(&text), declared) {
        if s.len() != n && s.chars().count() == n && s.chars().all(|c| (c as u32) < 0x100) {
            return Ok(s.chars().map(|c| c as u8).collect::<Vec<u8>>().into());
        }
    }
    Ok(text.into())
}

/// A form body from `postData.params`.
fn params_body(mime: &str, params: Vec<Param>) -> Vec<u8> {
    let boundary = mime
        .to_ascii_lowercase()
        .starts_with("multipart/")
        .then(|| {
            mime.split(';').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("boundary")
                    .then(|| v.trim().trim_matches('"').to_owned())
            })
        })
        .flatten();
    let mut out = Vec::new();
    match boundary {
        Some(b) => {
            for p in params {
                out.extend_from_slice(format!("--{b}\r\n").as_bytes());
                out.extend_from_slice(b"Content-Disposition: form-data; name=\"");
                out.extend_from_slice(&p.name.0);
                out.push(b'"');
                if let Some(f) = p.file_name {
                    out.extend_from_slice(b"; filename=\"");
                    out.extend_from_slice(&f.0);
                    out.push(b'"');
                }
                out.extend_from_slice(b"\r\n");
                if let Some(ct) = p.content_type.filter(|c| !c.0.is_empty()) {
                    out.extend_from_slice(b"Content-Type: ");
                    out.extend_from_slice(&ct.0);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&p.value.unwrap_or_default().0);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(format!("--{b}--\r\n").as_bytes());
        }
        None => {
            for (i, p) in params.into_iter().enumerate() {
                if i > 0 {
                    out.push(b'&');
                }
                form_encode(&p.name.0, &mut out);
                out.push(b'=');
                form_encode(&p.value.unwrap_or_default().0, &mut out);
            }
        }
    }
    out
}

/// `application/x-www-form-urlencoded` encoding.
fn form_encode(v: &[u8], out: &mut Vec<u8>) {
    for &b in v {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(b),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(format!("%{b:02X}").as_bytes()),
        }
    }
}

fn conn_of(c: &serde_json::Value) -> Option<u64> {
    let text = match c {
        serde_json::Value::String(s) if !s.is_empty() => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    Some(h.finish())
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
            // `+01:00`, `+0100` or `+01`.
            let oh = num(i + 1..i + 3)?;
            let om = match b.get(i + 3) {
                Some(b':') => num(i + 4..i + 6)?,
                Some(_) => num(i + 3..i + 5)?,
                None => 0,
            };
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
    fn a_body_the_exporter_decoded_is_sent_in_its_declared_coding() {
        use std::io::Read;
        let har = br#"{"log":{"version":"1.2","creator":{"name":"t","version":"1"},"entries":[
          {"startedDateTime":"2026-12-05T10:00:00.000Z","time":1,
           "request":{"method":"POST","url":"http://h/gz","headers":[{"name":"Content-Encoding","value":"gzip"}],
             "postData":{"mimeType":"application/json","text":"{\"a\":1}"}},"response":{"status":200}},
          {"startedDateTime":"2026-12-05T10:00:01.000Z","time":1,
           "request":{"method":"POST","url":"http://h/zz","headers":[{"name":"content-encoding","value":"deflate"}],
             "postData":{"mimeType":"application/json","text":"{\"b\":2}"}},"response":{"status":200}},
          {"startedDateTime":"2026-12-05T10:00:02.000Z","time":1,
           "request":{"method":"POST","url":"http://h/plain","headers":[],
             "postData":{"mimeType":"text/plain","text":"hi"}},"response":{"status":200}}]}}"#;
        let reqs = read(har).unwrap();
        let mut gz = flate2::read::GzDecoder::new(&reqs[0].body[..]);
        let mut text = String::new();
        gz.read_to_string(&mut text).unwrap();
        assert_eq!(text, r#"{"a":1}"#);
        let mut z = flate2::read::ZlibDecoder::new(&reqs[1].body[..]);
        let mut text = String::new();
        z.read_to_string(&mut text).unwrap();
        assert_eq!(text, r#"{"b":2}"#);
        assert_eq!(&reqs[2].body[..], b"hi");
        // Already gzip (base64 in the file): kept as it is.
        let already = encoded_as_sent(
            reqs[0].body.clone(),
            &[("Content-Encoding".into(), "gzip".into())],
        );
        assert_eq!(already, reqs[0].body);
    }

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

    /// Written by mitmproxy 11.0.2 (`mitmdump --mode reverse:http://...
    /// --set hardump=F`) from curl's requests in two runs, the responses'
    /// headers and bodies trimmed: a JSON body that is not UTF-8 (a lone
    /// surrogate in the file), UTF-8 text without a charset (written as
    /// Latin-1), a binary body, a form, a non-ASCII header.
    const MITMPROXY: &[u8] = include_bytes!("../tests/data/mitmproxy-11.0.2.har");

    #[test]
    fn a_real_mitmproxy_har_reads_back_the_bytes_sent() {
        let reqs = read(MITMPROXY).unwrap();
        let by = |path: &str| reqs.iter().find(|r| r.target == path).unwrap();
        assert_eq!(reqs.len(), 8);
        assert_eq!(&by("/v1/badjson").body[..], b"{\"bad\":\"\xff\xfe\"}");
        assert_eq!(&by("/v1/utf8").body[..], "café naïve".as_bytes());
        assert_eq!(&by("/v1/utf8cs").body[..], "café naïve".as_bytes());
        assert_eq!(&by("/v1/tiny").body[..], b"ab\x00\xff\r\n\xc3\x28end");
        assert_eq!(&by("/v1/form").body[..], b"a=1&b=two+words&c=%26");
        assert_eq!(&by("/v1/patch").body[..], b"{\"p\":1}");
        assert_eq!(by("/v1/hdr").header("x-name"), Some("Jürgen"));
        assert_eq!(by("/v1/patch").method, "PATCH");
        assert!(reqs.iter().all(|r| r.status.is_some()));
        // time 2.2364 ms less receive 0.3490 ms.
        assert_eq!(by("/v1/patch").latency_us, Some(1887));
        assert_eq!(reqs[0].target, "/ka/1");
        assert_eq!(reqs[1].at_us, 288_008);
    }

    #[test]
    fn har_variants_of_other_exporters() {
        let har = "\u{feff}".to_owned()
            + r#"{"log":{"version":"1.2","creator":{"name":"t","version":"1"},"pages":[],"entries":[
          {"startedDateTime":"2026-12-05T10:00:00Z","time":5,"_priority":"High","connection":1234,
           "request":{"method":"POST","url":"https://h/form?x=1#frag","httpVersion":"h2",
             "headers":[{"name":":method","value":"POST"},{"name":":path","value":"/form?x=1"},{"name":"content-type","value":"application/x-www-form-urlencoded"},{"name":"cookie","value":"a=1"}],
             "cookies":[{"name":"a","value":"1","_extra":true}],
             "postData":{"mimeType":"application/x-www-form-urlencoded","params":[{"name":"q","value":"a b&c"},{"name":"é","value":"1"}]}},
           "response":{"status":200,"_transferSize":10},"timings":{"receive":-1}},
          {"startedDateTime":"2026-12-05T11:00:00.25+0100","time":1,
           "request":{"method":"POST","url":"http://h/up","headers":[],
             "postData":{"mimeType":"multipart/form-data; boundary=XyZ","params":[{"name":"f","fileName":"a.bin","contentType":"application/octet-stream","value":"data"},{"name":"n","value":"v"}]}},
           "response":{"status":201}},
          {"startedDateTime":"2026-12-05T05:00:00.5-05:00",
           "request":{"method":"PUT","url":"http://h/b64","headers":[{"name":"Content-Length","value":"3"}],
             "postData":{"mimeType":"application/octet-stream","text":"AP/+\n","encoding":"base64"}},
           "response":{"status":0}},
          {"startedDateTime":"2026-12-05T10:00:01.000000+00:00",
           "request":{"method":"CONNECT","url":"https://h:443/","headers":[]},"response":{"status":200}}
        ]}}"#;
        let reqs = read(har.as_bytes()).unwrap();
        assert_eq!(reqs.len(), 3, "the CONNECT tunnel is left out");
        assert_eq!(reqs[0].target, "/form?x=1");
        assert_eq!(&reqs[0].body[..], b"q=a+b%26c&%C3%A9=1");
        assert_eq!(reqs[0].headers.len(), 2, "pseudo-headers dropped");
        assert_eq!(reqs[0].latency_us, Some(5000));
        assert!(reqs[0].conn.is_some(), "a numeric connection id");
        assert_eq!(reqs[1].at_us, 250_000, "10:00:00.25 UTC");
        assert_eq!(reqs[1].target, "/up");
        assert_eq!(
            &reqs[1].body[..],
            b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\ndata\r\n--XyZ\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\nv\r\n--XyZ--\r\n"
        );
        assert_eq!(reqs[2].at_us, 500_000);
        assert_eq!(&reqs[2].body[..], b"\x00\xff\xfe");
        assert_eq!(reqs[2].status, None);
        assert_eq!(reqs[2].latency_us, None);

        let empty =
            br#"{"log":{"version":"1.2","creator":{"name":"t","version":"1"},"entries":[]}}"#;
        assert!(read(empty).unwrap().is_empty());
        assert_eq!(
            parse_rfc3339_us("1970-01-01T01:00:00+0100"),
            Some(0),
            "an offset without a colon"
        );
        assert_eq!(
            parse_rfc3339_us("1970-01-01T00:00:00.123456789Z"),
            Some(123_456)
        );
    }
}
