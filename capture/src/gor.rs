//! GoReplay `.gor` files, read as a stream of [`Request`]s.
//!
//! GoReplay's file output is text: each payload is a header line
//! `<type> <id> <timestamp-ns> <latency-ns>` (type `1` a request, `2` the
//! original response, `3` a replayed response), the raw HTTP/1.x message,
//! and a separator line `🐵🙈🙉`. Requests become records; the original
//! response with the same id, when it follows within [`LOOKAHEAD`]
//! payloads, gives the request its status and latency. Replayed responses
//! are ignored. Times are relative to the first request's timestamp.
//! GoReplay does not record connections, so `conn` is `None`.

use std::collections::VecDeque;
use std::io::BufRead;

use bytes::Bytes;

use crate::format::Request;

/// The payload separator line.
pub const SEPARATOR: &str = "🐵🙈🙉";
/// Requests held back waiting for their response.
pub const LOOKAHEAD: usize = 256;

/// A payload the importer could not read (skipped and counted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    pub malformed: u64,
    pub responses_without_request: u64,
}

struct Pending {
    id: String,
    request: Request,
}

/// Streams requests out of a `.gor` file.
pub struct GorReader<R: BufRead> {
    input: R,
    pending: VecDeque<Pending>,
    first_ns: Option<u64>,
    last_us: u64,
    done: bool,
    line: Vec<u8>,
    pub skipped: Skipped,
}

impl<R: BufRead> GorReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            pending: VecDeque::new(),
            first_ns: None,
            last_us: 0,
            done: false,
            line: Vec::new(),
            skipped: Skipped::default(),
        }
    }

    /// Reads one payload: its header line and its message (without the
    /// separator). `None` at the end.
    fn payload(&mut self) -> Option<(String, Vec<u8>)> {
        let mut header = None;
        let mut message = Vec::new();
        loop {
            self.line.clear();
            match self.input.read_until(b'\n', &mut self.line) {
                Ok(0) | Err(_) => {
                    // A last payload without its separator still counts.
                    return header.map(|h| (h, message));
                }
                Ok(_) => {}
            }
            let trimmed = trim_eol(&self.line);
            if trimmed == SEPARATOR.as_bytes() {
                match header {
                    Some(h) => {
                        // The message's last line ending belongs to the
                        // separator.
                        if message.ends_with(b"\n") {
                            message.pop();
                        }
                        return Some((h, message));
                    }
                    None => continue,
                }
            }
            match &header {
                None => {
                    if trimmed.is_empty() {
                        continue;
                    }
                    header = Some(String::from_utf8_lossy(trimmed).into_owned());
                }
                Some(_) => message.extend_from_slice(&self.line),
            }
        }
    }

    fn at_us(&mut self, ns: u64) -> u64 {
        let first = *self.first_ns.get_or_insert(ns);
        // Out-of-order payloads keep the order they have in the file.
        let us = ns.saturating_sub(first) / 1000;
        self.last_us = self.last_us.max(us);
        self.last_us
    }

    fn fill(&mut self) {
        while !self.done && self.pending.len() < LOOKAHEAD {
            let Some((header, message)) = self.payload() else {
                self.done = true;
                return;
            };
            let mut fields = header.split_ascii_whitespace();
            let kind = fields.next().unwrap_or("");
            let id = fields.next().unwrap_or("").to_owned();
            let ts = fields.next().and_then(|t| t.parse::<u64>().ok());
            let latency_ns = fields.next().and_then(|t| t.parse::<i64>().ok());
            match (kind, ts) {
                ("1", Some(ts)) => match parse_request(&message) {
                    Some(mut request) => {
                        request.at_us = self.at_us(ts);
                        self.pending.push_back(Pending { id, request });
                    }
                    None => self.skipped.malformed += 1,
                },
                ("2", _) => {
                    let status = parse_status(&message);
                    match self.pending.iter_mut().find(|p| p.id == id) {
                        Some(p) => {
                            p.request.status = status;
                            p.request.latency_us =
                                latency_ns.filter(|l| *l > 0).map(|l| l as u64 / 1000);
                        }
                        None => self.skipped.responses_without_request += 1,
                    }
                }
                ("3", _) => {}
                _ => self.skipped.malformed += 1,
            }
            // A request whose response has come needs no more waiting.
            if self
                .pending
                .front()
                .is_some_and(|p| p.request.status.is_some())
            {
                return;
            }
        }
    }
}

impl<R: BufRead> Iterator for GorReader<R> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.fill();
        self.pending.pop_front().map(|p| p.request)
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let mut l = line;
    if l.ends_with(b"\n") {
        l = &l[..l.len() - 1];
    }
    if l.ends_with(b"\r") {
        l = &l[..l.len() - 1];
    }
    l
}

/// Parses a raw HTTP/1.x request (head and body; a chunked body is
/// de-chunked, a `Content-Length` body cut to its length).
pub fn parse_request(raw: &[u8]) -> Option<Request> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        // A message saved without its blank line: the head is all of it.
        Ok(httparse::Status::Partial) => {
            let mut with_end = raw.to_vec();
            with_end.extend_from_slice(b"\r\n\r\n");
            let mut headers = [httparse::EMPTY_HEADER; 128];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&with_end) {
                Ok(httparse::Status::Complete(_)) => {}
                _ => return None,
            }
            return build(&req, Bytes::new());
        }
        Err(_) => return None,
    };
    let rest = &raw[head_len..];
    let chunked = req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        let len = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        match len {
            Some(n) => rest[..n.min(rest.len())].to_vec(),
            None => rest.to_vec(),
        }
    };
    build(&req, Bytes::from(body))
}

fn build(req: &httparse::Request<'_, '_>, body: Bytes) -> Option<Request> {
    let method = req.method?.to_owned();
    let mut target = req.path?.to_owned();
    // An absolute-form target (to a proxy) keeps only its path and query.
    if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        target = rest.find('/').map_or("/".into(), |i| rest[i..].to_owned());
    }
    let headers = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Some(Request {
        method,
        target,
        headers,
        body,
        ..Request::default()
    })
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok());
        let Some(size) = size else { break };
        raw = &raw[eol + 2..];
        if size == 0 {
            break;
        }
        let take = size.min(raw.len());
        out.extend_from_slice(&raw[..take]);
        raw = &raw[take..];
        raw = raw.strip_prefix(b"\r\n").unwrap_or(raw);
    }
    out
}

/// The status code of a raw HTTP/1.x response.
fn parse_status(raw: &[u8]) -> Option<u16> {
    let line = raw.split(|b| *b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split_ascii_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "1 a1 1700000000000000000 0\r\nPOST /v1/events?src=gor HTTP/1.1\r\nHost: example\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"id\":\"e1\"}\n🐵🙈🙉\n2 a1 1700000000002000000 1500000\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n\n🐵🙈🙉\n1 b2 1700000000500000000 0\nGET /v1/sessions/42 HTTP/1.1\r\nHost: example\r\n\r\n\n🐵🙈🙉\n3 b2 1700000000600000000 100\nHTTP/1.1 200 OK\r\n\r\n\n🐵🙈🙉\n";

    #[test]
    fn requests_get_their_original_responses_and_relative_times() {
        let reqs: Vec<_> = GorReader::new(FILE.as_bytes()).collect();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].method, "POST");
        assert_eq!(reqs[0].target, "/v1/events?src=gor");
        assert_eq!(&reqs[0].body[..], b"{\"id\":\"e1\"}");
        assert_eq!(reqs[0].status, Some(202));
        assert_eq!(reqs[0].latency_us, Some(1500));
        assert_eq!(reqs[0].at_us, 0);
        assert_eq!(reqs[1].target, "/v1/sessions/42");
        assert_eq!(reqs[1].at_us, 500_000);
        assert_eq!(
            reqs[1].status, None,
            "a replayed response is not the original"
        );
    }

    #[test]
    fn chunked_bodies_are_dechunked() {
        let raw = b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let r = parse_request(raw).unwrap();
        assert_eq!(&r.body[..], b"hello world");
    }
}
